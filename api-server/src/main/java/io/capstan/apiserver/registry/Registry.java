package io.capstan.apiserver.registry;

import io.capstan.api.apps.v1.Deployment;
import io.capstan.api.apps.v1.ReplicaSet;
import io.capstan.api.coordination.v1.Lease;
import io.capstan.api.core.v1.ConfigMap;
import io.capstan.api.core.v1.Endpoints;
import io.capstan.api.core.v1.Event;
import io.capstan.api.core.v1.Namespace;
import io.capstan.api.core.v1.Node;
import io.capstan.api.core.v1.Pod;
import io.capstan.api.core.v1.Service;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** The kinds this server serves, looked up by group and plural resource name. */
public final class Registry {
  private final Map<String, ResourceType> byGroupResource = new LinkedHashMap<>();

  public Registry register(ResourceType t) {
    if (byGroupResource.putIfAbsent(t.group() + "/" + t.resource(), t) != null) {
      throw new IllegalArgumentException("resource registered twice: " + t.group() + "/" + t.resource());
    }
    return this;
  }

  public Optional<ResourceType> find(String group, String resource) {
    return Optional.ofNullable(byGroupResource.get(group + "/" + resource));
  }

  public Collection<ResourceType> all() {
    return byGroupResource.values();
  }

  /** Every kind of Capstan's API. */
  public static Registry builtIn() {
    return new Registry()
        .register(new ResourceType("", "v1", "namespaces", "Namespace", "namespace", List.of("ns"), false, true, Namespace.getDefaultInstance()))
        .register(new ResourceType("", "v1", "nodes", "Node", "node", List.of("no"), false, true, Node.getDefaultInstance()))
        .register(new ResourceType("", "v1", "pods", "Pod", "pod", List.of("po"), true, true, Pod.getDefaultInstance()))
        .register(new ResourceType("", "v1", "services", "Service", "service", List.of("svc"), true, true, Service.getDefaultInstance()))
        .register(new ResourceType("", "v1", "endpoints", "Endpoints", "endpoints", List.of("ep"), true, false, Endpoints.getDefaultInstance()))
        .register(new ResourceType("", "v1", "configmaps", "ConfigMap", "configmap", List.of("cm"), true, false, ConfigMap.getDefaultInstance()))
        .register(new ResourceType("", "v1", "events", "Event", "event", List.of("ev"), true, false, Event.getDefaultInstance()))
        .register(new ResourceType("apps", "v1", "replicasets", "ReplicaSet", "replicaset", List.of("rs"), true, true, ReplicaSet.getDefaultInstance()))
        .register(new ResourceType("apps", "v1", "deployments", "Deployment", "deployment", List.of("deploy"), true, true, Deployment.getDefaultInstance()))
        .register(new ResourceType("coordination.k8s.io", "v1", "leases", "Lease", "lease", List.of(), true, false, Lease.getDefaultInstance()));
  }
}
