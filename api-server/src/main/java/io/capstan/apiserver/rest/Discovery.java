package io.capstan.apiserver.rest;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.capstan.apiserver.registry.Registry;
import io.capstan.apiserver.registry.ResourceType;
import java.util.LinkedHashMap;
import java.util.Map;

/** Kubernetes' discovery documents, made from the registry. */
final class Discovery {
  private static final String[] VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"};
  private final Registry registry;

  Discovery(Registry registry) {
    this.registry = registry;
  }

  ObjectNode version() {
    ObjectNode v = KubeJson.JSON.createObjectNode();
    v.put("major", "1").put("minor", "32").put("gitVersion", "v1.32.0-capstan").put("gitCommit", "")
        .put("gitTreeState", "clean").put("buildDate", "2026-11-24T00:00:00Z").put("goVersion", "java17")
        .put("compiler", "javac").put("platform", "linux/amd64");
    return v;
  }

  ObjectNode api() {
    ObjectNode n = KubeJson.JSON.createObjectNode().put("kind", "APIVersions");
    n.putArray("versions").add("v1");
    n.putArray("serverAddressByClientCIDRs").addObject().put("clientCIDR", "0.0.0.0/0").put("serverAddress", "");
    return n;
  }

  ObjectNode apis() {
    ObjectNode n = KubeJson.JSON.createObjectNode().put("kind", "APIGroupList").put("apiVersion", "v1");
    ArrayNode groups = n.putArray("groups");
    Map<String, String> seen = new LinkedHashMap<>();
    for (ResourceType t : registry.all()) {
      if (!t.group().isEmpty()) {
        seen.putIfAbsent(t.group(), t.version());
      }
    }
    seen.forEach((g, v) -> {
      ObjectNode gn = groups.addObject().put("name", g);
      gn.putArray("versions").addObject().put("groupVersion", g + "/" + v).put("version", v);
      gn.putObject("preferredVersion").put("groupVersion", g + "/" + v).put("version", v);
    });
    return n;
  }

  /** The APIResourceList of one group/version, or null if there is none. */
  ObjectNode resources(String group, String version) {
    ObjectNode n = KubeJson.JSON.createObjectNode().put("kind", "APIResourceList").put("apiVersion", "v1")
        .put("groupVersion", group.isEmpty() ? version : group + "/" + version);
    ArrayNode list = n.putArray("resources");
    boolean any = false;
    for (ResourceType t : registry.all()) {
      if (!t.group().equals(group) || !t.version().equals(version)) {
        continue;
      }
      any = true;
      ObjectNode r = list.addObject().put("name", t.resource()).put("singularName", t.singular())
          .put("namespaced", t.namespaced()).put("kind", t.kind());
      ArrayNode verbs = r.putArray("verbs");
      for (String v : VERBS) {
        verbs.add(v);
      }
      ArrayNode shorts = r.putArray("shortNames");
      t.shortNames().forEach(shorts::add);
      if (t.hasStatus()) {
        list.addObject().put("name", t.resource() + "/status").put("singularName", "").put("namespaced", t.namespaced())
            .put("kind", t.kind()).putArray("verbs").add("get").add("patch").add("update");
      }
      if (t.scalable()) {
        list.addObject().put("name", t.resource() + "/scale").put("singularName", "").put("namespaced", t.namespaced())
            .put("group", "autoscaling").put("version", "v1").put("kind", "Scale")
            .putArray("verbs").add("get").add("patch").add("update");
      }
      if (t.resource().equals("pods")) {
        list.addObject().put("name", "pods/binding").put("singularName", "").put("namespaced", true)
            .put("kind", "Binding").putArray("verbs").add("create");
      }
    }
    return any ? n : null;
  }
}
