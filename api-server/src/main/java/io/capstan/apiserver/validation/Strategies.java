package io.capstan.apiserver.validation;

import static io.capstan.apiserver.storage.StoredObjects.meta;
import static io.capstan.apiserver.storage.StoredObjects.withMeta;

import com.google.protobuf.Message;
import io.capstan.api.apps.v1.Deployment;
import io.capstan.api.apps.v1.DeploymentSpec;
import io.capstan.api.apps.v1.DeploymentStrategy;
import io.capstan.api.apps.v1.PodTemplateSpec;
import io.capstan.api.apps.v1.ReplicaSet;
import io.capstan.api.apps.v1.RollingUpdateDeployment;
import io.capstan.api.core.v1.Container;
import io.capstan.api.core.v1.ContainerPort;
import io.capstan.api.core.v1.Namespace;
import io.capstan.api.core.v1.Pod;
import io.capstan.api.core.v1.PodSpec;
import io.capstan.api.core.v1.Service;
import io.capstan.api.core.v1.ServicePort;
import io.capstan.api.meta.v1.IntOrString;
import io.capstan.api.meta.v1.LabelSelector;
import io.capstan.api.meta.v1.ObjectMeta;
import java.util.List;
import java.util.Map;

/**
 * Defaulting and validation of each kind, as Kubernetes applies them on create and update
 * (Kubernetes' {@code pkg/apis/.../defaults.go} and {@code validation.go}, in small).
 */
public final class Strategies {
  private Strategies() {}

  private static final List<String> RESTART_POLICIES = List.of("Always", "OnFailure", "Never");

  /** Fills what Kubernetes fills when a client leaves it out. */
  public static Message defaults(Message m) {
    if (m instanceof Pod p) {
      return p.toBuilder().setSpec(defaults(p.getSpec()))
          .setStatus(p.getStatus().getPhase().isEmpty() ? p.getStatus().toBuilder().setPhase("Pending").build() : p.getStatus())
          .build();
    }
    if (m instanceof Deployment d) {
      DeploymentSpec.Builder s = d.getSpec().toBuilder();
      if (!s.hasReplicas()) {
        s.setReplicas(1);
      }
      if (!s.hasRevisionHistoryLimit()) {
        s.setRevisionHistoryLimit(10);
      }
      if (!s.hasProgressDeadlineSeconds()) {
        s.setProgressDeadlineSeconds(600);
      }
      DeploymentStrategy.Builder st = s.getStrategy().toBuilder();
      if (st.getType().isEmpty()) {
        st.setType("RollingUpdate");
      }
      if (st.getType().equals("RollingUpdate")) {
        RollingUpdateDeployment.Builder ru = st.getRollingUpdate().toBuilder();
        if (!ru.hasMaxSurge()) {
          ru.setMaxSurge(IntOrString.newBuilder().setType(1).setStrVal("25%"));
        }
        if (!ru.hasMaxUnavailable()) {
          ru.setMaxUnavailable(IntOrString.newBuilder().setType(1).setStrVal("25%"));
        }
        st.setRollingUpdate(ru);
      }
      s.setStrategy(st).setTemplate(s.getTemplate().toBuilder().setSpec(defaults(s.getTemplate().getSpec())));
      return d.toBuilder().setSpec(s).build();
    }
    if (m instanceof ReplicaSet rs) {
      var s = rs.getSpec().toBuilder();
      if (!s.hasReplicas()) {
        s.setReplicas(1);
      }
      s.setTemplate(s.getTemplate().toBuilder().setSpec(defaults(s.getTemplate().getSpec())));
      return rs.toBuilder().setSpec(s).build();
    }
    if (m instanceof Service svc) {
      var s = svc.getSpec().toBuilder();
      if (s.getType().isEmpty()) {
        s.setType("ClusterIP");
      }
      if (s.getSessionAffinity().isEmpty()) {
        s.setSessionAffinity("None");
      }
      for (int i = 0; i < s.getPortsCount(); i++) {
        ServicePort.Builder p = s.getPorts(i).toBuilder();
        if (p.getProtocol().isEmpty()) {
          p.setProtocol("TCP");
        }
        if (!p.hasTargetPort()) {
          p.setTargetPort(IntOrString.newBuilder().setIntVal(p.getPort()));
        }
        s.setPorts(i, p);
      }
      return svc.toBuilder().setSpec(s).build();
    }
    if (m instanceof Namespace ns) {
      var b = ns.toBuilder();
      if (ns.getStatus().getPhase().isEmpty()) {
        b.getStatusBuilder().setPhase("Active");
      }
      if (ns.getSpec().getFinalizersCount() == 0) {
        b.getSpecBuilder().addFinalizers("kubernetes");
      }
      return b.build();
    }
    return m;
  }

  static PodSpec defaults(PodSpec spec) {
    PodSpec.Builder s = spec.toBuilder();
    if (s.getRestartPolicy().isEmpty()) {
      s.setRestartPolicy("Always");
    }
    if (!s.hasTerminationGracePeriodSeconds()) {
      s.setTerminationGracePeriodSeconds(30);
    }
    if (s.getDnsPolicy().isEmpty()) {
      s.setDnsPolicy("ClusterFirst");
    }
    if (s.getSchedulerName().isEmpty()) {
      s.setSchedulerName("default-scheduler");
    }
    for (int i = 0; i < s.getContainersCount(); i++) {
      Container.Builder c = s.getContainers(i).toBuilder();
      if (c.getImagePullPolicy().isEmpty()) {
        c.setImagePullPolicy(c.getImage().endsWith(":latest") || !c.getImage().contains(":") ? "Always" : "IfNotPresent");
      }
      for (int j = 0; j < c.getPortsCount(); j++) {
        ContainerPort p = c.getPorts(j);
        if (p.getProtocol().isEmpty()) {
          c.setPorts(j, p.toBuilder().setProtocol("TCP"));
        }
      }
      s.setContainers(i, c);
    }
    return s.build();
  }

  /**
   * Prepares an update of {@code current} to {@code next}, as Kubernetes' update strategies do:
   * the fields only the server sets (uid, creationTimestamp, deletionTimestamp and its grace
   * period) are kept from the stored object whatever the client sent; {@code metadata.generation}
   * goes up by one when anything but metadata and status changed (controllers compare it with
   * {@code status.observedGeneration}); and fields that may not change after creation are checked
   * (a pod's spec except images and added tolerations, a workload's selector, a service's
   * clusterIP). Throws 422 Invalid naming each field changed that may not be.
   */
  public static Message prepareUpdate(Message current, Message next, String kind) {
    ObjectMeta before = meta(current);
    ObjectMeta after = meta(next);
    FieldErrors errors = new FieldErrors();
    if (current instanceof Pod oldPod && next instanceof Pod newPod) {
      PodSpec.Builder relaxed = newPod.getSpec().toBuilder();
      if (relaxed.getContainersCount() == oldPod.getSpec().getContainersCount()) {
        for (int i = 0; i < relaxed.getContainersCount(); i++) {
          relaxed.setContainers(i, relaxed.getContainers(i).toBuilder().setImage(oldPod.getSpec().getContainers(i).getImage())
              .setImagePullPolicy(oldPod.getSpec().getContainers(i).getImagePullPolicy()));
        }
      }
      boolean onlyAddsTolerations = newPod.getSpec().getTolerationsList().containsAll(oldPod.getSpec().getTolerationsList());
      if (onlyAddsTolerations) {
        relaxed.clearTolerations().addAllTolerations(oldPod.getSpec().getTolerationsList());
      }
      if (!relaxed.build().equals(oldPod.getSpec())) {
        errors.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`, "
            + "`spec.tolerations` (only additions to existing tolerations)");
      }
    } else if (current instanceof Deployment oldD && next instanceof Deployment newD) {
      if (!oldD.getSpec().getSelector().equals(newD.getSpec().getSelector())) {
        errors.immutable("spec.selector", newD.getSpec().getSelector().getMatchLabelsMap().toString());
      }
    } else if (current instanceof ReplicaSet oldRs && next instanceof ReplicaSet newRs) {
      if (!oldRs.getSpec().getSelector().equals(newRs.getSpec().getSelector())) {
        errors.immutable("spec.selector", newRs.getSpec().getSelector().getMatchLabelsMap().toString());
      }
    } else if (current instanceof Service oldSvc && next instanceof Service newSvc) {
      String oldIp = oldSvc.getSpec().getClusterIp();
      if (!oldIp.isEmpty() && !newSvc.getSpec().getClusterIp().isEmpty() && !oldIp.equals(newSvc.getSpec().getClusterIp())) {
        errors.immutable("spec.clusterIP", newSvc.getSpec().getClusterIp());
      }
    }
    errors.throwIfAny(kind, after.getName());
    ObjectMeta.Builder m = after.toBuilder().setUid(before.getUid()).setCreationTimestamp(before.getCreationTimestamp())
        .setDeletionTimestamp(before.getDeletionTimestamp()).setGeneration(before.getGeneration());
    if (before.hasDeletionGracePeriodSeconds()) {
      m.setDeletionGracePeriodSeconds(before.getDeletionGracePeriodSeconds());
    } else {
      m.clearDeletionGracePeriodSeconds();
    }
    if (!content(current).equals(content(next))) {
      m.setGeneration(before.getGeneration() + 1);
    }
    return withMeta(next, m.build());
  }

  /** An object without its metadata and status: what {@code metadata.generation} counts changes of. */
  private static Message content(Message m) {
    Message.Builder b = m.toBuilder().clearField(m.getDescriptorForType().findFieldByName("metadata"));
    var status = m.getDescriptorForType().findFieldByName("status");
    if (status != null) {
      b.clearField(status);
    }
    return b.build();
  }

  /** Checks an object; throws 422 Invalid naming every bad field. */
  public static void validate(Message m, String kind, boolean namespaced) {
    ObjectMeta meta = meta(m);
    FieldErrors errors = new FieldErrors();
    if (kind.equals("Namespace")) {
      errors.dns1123Label("metadata.name", meta.getName());
    } else {
      errors.dns1123Subdomain("metadata.name", meta.getName());
    }
    errors.labels("metadata.labels", meta.getLabelsMap());
    if (m instanceof Pod p) {
      validatePodSpec(p.getSpec(), "spec", errors);
    } else if (m instanceof Deployment d) {
      validateReplicated(d.getSpec().getReplicas(), d.getSpec().getSelector(), d.getSpec().getTemplate(), errors);
      String type = d.getSpec().getStrategy().getType();
      if (!type.equals("RollingUpdate") && !type.equals("Recreate")) {
        errors.notSupported("spec.strategy.type", type, List.of("Recreate", "RollingUpdate"));
      }
    } else if (m instanceof ReplicaSet rs) {
      validateReplicated(rs.getSpec().getReplicas(), rs.getSpec().getSelector(), rs.getSpec().getTemplate(), errors);
    } else if (m instanceof Service svc) {
      if (!svc.getSpec().getType().equals("ClusterIP") && !svc.getSpec().getType().equals("NodePort")) {
        errors.notSupported("spec.type", svc.getSpec().getType(), List.of("ClusterIP", "NodePort"));
      }
      for (int i = 0; i < svc.getSpec().getPortsCount(); i++) {
        int port = svc.getSpec().getPorts(i).getPort();
        if (port < 1 || port > 65535) {
          errors.invalid("spec.ports[" + i + "].port", Integer.toString(port), "must be between 1 and 65535, inclusive");
        }
      }
    }
    errors.throwIfAny(kind, meta.getName());
  }

  private static void validateReplicated(int replicas, LabelSelector selector, PodTemplateSpec template, FieldErrors errors) {
    if (replicas < 0) {
      errors.invalid("spec.replicas", Integer.toString(replicas), "must be greater than or equal to 0");
    }
    errors.required("spec.selector", selector.getMatchLabelsCount() > 0 || selector.getMatchExpressionsCount() > 0);
    Map<String, String> labels = template.getMetadata().getLabelsMap();
    for (var e : selector.getMatchLabelsMap().entrySet()) {
      if (!e.getValue().equals(labels.get(e.getKey()))) {
        errors.invalid("spec.template.metadata.labels", labels.toString(), "`selector` does not match template `labels`");
        break;
      }
    }
    errors.labels("spec.template.metadata.labels", labels);
    validatePodSpec(template.getSpec(), "spec.template.spec", errors);
  }

  private static void validatePodSpec(PodSpec spec, String path, FieldErrors errors) {
    errors.required(path + ".containers", spec.getContainersCount() > 0);
    java.util.Set<String> names = new java.util.HashSet<>();
    for (int i = 0; i < spec.getContainersCount(); i++) {
      Container c = spec.getContainers(i);
      String cp = path + ".containers[" + i + "]";
      errors.required(cp + ".name", !c.getName().isEmpty());
      if (!c.getName().isEmpty()) {
        errors.dns1123Label(cp + ".name", c.getName());
        if (!names.add(c.getName())) {
          errors.invalid(cp + ".name", c.getName(), "Duplicate value");
        }
      }
      errors.required(cp + ".image", !c.getImage().isEmpty());
      errors.quantities(cp + ".resources.requests", c.getResources().getRequestsMap());
      errors.quantities(cp + ".resources.limits", c.getResources().getLimitsMap());
      for (int j = 0; j < c.getPortsCount(); j++) {
        int port = c.getPorts(j).getContainerPort();
        if (port < 1 || port > 65535) {
          errors.invalid(cp + ".ports[" + j + "].containerPort", Integer.toString(port), "must be between 1 and 65535, inclusive");
        }
      }
    }
    if (!RESTART_POLICIES.contains(spec.getRestartPolicy())) {
      errors.notSupported(path + ".restartPolicy", spec.getRestartPolicy(), RESTART_POLICIES);
    }
    if (spec.hasTerminationGracePeriodSeconds() && spec.getTerminationGracePeriodSeconds() < 0) {
      errors.invalid(path + ".terminationGracePeriodSeconds", Long.toString(spec.getTerminationGracePeriodSeconds()),
          "must be greater than or equal to 0");
    }
  }
}
