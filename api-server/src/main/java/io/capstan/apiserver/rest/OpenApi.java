package io.capstan.apiserver.rest;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import io.capstan.api.meta.v1.IntOrString;
import io.capstan.apiserver.registry.Registry;
import io.capstan.apiserver.registry.ResourceType;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashSet;
import java.util.Set;

/**
 * OpenAPI v3 documents generated from the objects' protobuf descriptors (nothing written by
 * hand): an index at {@code /openapi/v3} and one document per group/version, with each kind's
 * schema tagged {@code x-kubernetes-group-version-kind} and PATCH operations that declare the
 * {@code fieldValidation} parameter (which tells kubectl the server validates).
 */
final class OpenApi {
  private final Registry registry;

  OpenApi(Registry registry) {
    this.registry = registry;
  }

  private static String gvPath(ResourceType t) {
    return t.group().isEmpty() ? "api/" + t.version() : "apis/" + t.group() + "/" + t.version();
  }

  ObjectNode index() {
    ObjectNode root = KubeJson.JSON.createObjectNode();
    ObjectNode paths = root.putObject("paths");
    for (ResourceType t : registry.all()) {
      paths.putObject(gvPath(t)).put("serverRelativeURL", "/openapi/v3/" + gvPath(t));
    }
    return root;
  }

  /** The document of one group/version ("api/v1", "apis/apps/v1"), or null. */
  ObjectNode document(String gv) {
    ObjectNode doc = KubeJson.JSON.createObjectNode().put("openapi", "3.0.0");
    doc.putObject("info").put("title", "Capstan").put("version", "v1.32.0-capstan");
    ObjectNode paths = doc.putObject("paths");
    ObjectNode schemas = doc.putObject("components").putObject("schemas");
    Deque<Descriptor> todo = new ArrayDeque<>();
    Set<String> done = new HashSet<>();
    boolean any = false;
    for (ResourceType t : registry.all()) {
      if (!gvPath(t).equals(gv)) {
        continue;
      }
      any = true;
      Descriptor d = t.prototype().getDescriptorForType();
      todo.add(d);
      String base = "/" + gv + (t.namespaced() ? "/namespaces/{namespace}/" : "/") + t.resource();
      ObjectNode item = paths.putObject(base + "/{name}");
      for (String verb : new String[] {"get", "put", "patch", "delete"}) {
        ObjectNode op = item.putObject(verb);
        op.put("operationId", verb + t.kind());
        op.putObject("x-kubernetes-group-version-kind").put("group", t.group()).put("version", t.version()).put("kind", t.kind());
        ArrayNode params = op.putArray("parameters");
        if (!verb.equals("get") && !verb.equals("delete")) {
          params.addObject().put("name", "fieldValidation").put("in", "query").putObject("schema").put("type", "string");
        }
        op.putObject("responses").putObject("200").put("description", "OK").putObject("content")
            .putObject("application/json").putObject("schema").put("$ref", "#/components/schemas/" + d.getFullName());
      }
      ObjectNode coll = paths.putObject(base);
      ObjectNode post = coll.putObject("post").put("operationId", "create" + t.kind());
      post.putObject("x-kubernetes-group-version-kind").put("group", t.group()).put("version", t.version()).put("kind", t.kind());
      post.putArray("parameters").addObject().put("name", "fieldValidation").put("in", "query").putObject("schema").put("type", "string");
      post.putObject("responses").putObject("201").put("description", "Created");
    }
    if (!any) {
      return null;
    }
    while (!todo.isEmpty()) {
      Descriptor d = todo.poll();
      if (!done.add(d.getFullName())) {
        continue;
      }
      ObjectNode s = schemas.putObject(d.getFullName()).put("type", "object");
      registry.all().stream().filter(t -> t.prototype().getDescriptorForType().equals(d)).findFirst().ifPresent(t ->
          s.putArray("x-kubernetes-group-version-kind").addObject().put("group", t.group()).put("version", t.version()).put("kind", t.kind()));
      ObjectNode props = s.putObject("properties");
      for (FieldDescriptor f : d.getFields()) {
        ObjectNode fs = props.putObject(f.getJsonName());
        if (f.isMapField()) {
          fs.put("type", "object");
          scalar(fs.putObject("additionalProperties"), f.getMessageType().findFieldByName("value"), todo);
        } else if (f.isRepeated()) {
          fs.put("type", "array");
          scalar(fs.putObject("items"), f, todo);
        } else {
          scalar(fs, f, todo);
        }
      }
    }
    return doc;
  }

  private static void scalar(ObjectNode s, FieldDescriptor f, Deque<Descriptor> todo) {
    switch (f.getJavaType()) {
      case STRING -> s.put("type", "string");
      case INT -> s.put("type", "integer").put("format", "int32");
      case LONG -> s.put("type", "integer").put("format", "int64");
      case BOOLEAN -> s.put("type", "boolean");
      case BYTE_STRING -> s.put("type", "string").put("format", "byte");
      case DOUBLE, FLOAT -> s.put("type", "number");
      case ENUM -> s.put("type", "string");
      case MESSAGE -> {
        if (f.getMessageType().equals(IntOrString.getDescriptor())) {
          s.put("x-kubernetes-int-or-string", true);
        } else {
          s.put("$ref", "#/components/schemas/" + f.getMessageType().getFullName());
          todo.add(f.getMessageType());
        }
      }
      default -> s.put("type", "string");
    }
  }
}
