package io.capstan.apiserver.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.api.apps.v1.Deployment;
import io.capstan.api.apps.v1.DeploymentSpec;
import io.capstan.api.apps.v1.PodTemplateSpec;
import io.capstan.api.core.v1.Container;
import io.capstan.api.core.v1.Namespace;
import io.capstan.api.core.v1.Pod;
import io.capstan.api.core.v1.PodSpec;
import io.capstan.api.core.v1.ResourceRequirements;
import io.capstan.api.meta.v1.LabelSelector;
import io.capstan.api.meta.v1.ObjectMeta;
import io.capstan.api.meta.v1.Status;
import io.capstan.api.server.v1.ApiServerGrpc;
import io.capstan.api.server.v1.CreateRequest;
import io.capstan.api.server.v1.DeleteRequest;
import io.capstan.api.server.v1.DeleteResponse;
import io.capstan.api.server.v1.GetRequest;
import io.capstan.api.server.v1.RawObject;
import io.capstan.api.server.v1.ResourceRef;
import io.capstan.api.server.v1.UpdateRequest;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Defaulting, validation, namespace rules and graceful deletion with finalizers. */
class ObjectRulesTest {
  private static ApiServerOnEtcd fixture;
  private static ManagedChannel ch;

  @BeforeAll
  static void start() throws Exception {
    fixture = new ApiServerOnEtcd(1000);
    ch = fixture.channel;
  }

  @AfterAll
  static void stop() {
    if (fixture != null) {
      fixture.close();
    }
  }

  private static ApiServerGrpc.ApiServerBlockingStub api() {
    return fixture.api();
  }

  private static ResourceRef ref(String group, String resource, String ns, String name) {
    return ResourceRef.newBuilder().setGroup(group).setVersion("v1").setResource(resource).setNamespace(ns).setName(name).build();
  }

  private static RawObject raw(com.google.protobuf.Message m) {
    return RawObject.newBuilder().setData(m.toByteString()).build();
  }

  private static Pod pod(String name, Container c) {
    return Pod.newBuilder().setMetadata(ObjectMeta.newBuilder().setName(name)).setSpec(PodSpec.newBuilder().addContainers(c)).build();
  }

  private static Status status(StatusRuntimeException e) {
    try {
      return Status.parseFrom(e.getTrailers().get(ApiServerService.STATUS_KEY));
    } catch (Exception ex) {
      throw new AssertionError(ex);
    }
  }

  @Test
  void initialNamespacesExistAndDefaultsAreApplied() throws Exception {
    for (String ns : new String[] {"default", "kube-system"}) {
      Namespace n = Namespace.parseFrom(api().get(GetRequest.newBuilder().setRef(ref("", "namespaces", "", ns)).build()).getData());
      assertThat(n.getStatus().getPhase()).isEqualTo("Active");
    }
    Pod p = Pod.parseFrom(api().create(CreateRequest.newBuilder().setRef(ref("", "pods", "default", ""))
        .setObject(raw(pod("defaults", Container.newBuilder().setName("c").setImage("nginx:1.27").build()))).build()).getData());
    assertThat(p.getSpec().getRestartPolicy()).isEqualTo("Always");
    assertThat(p.getSpec().getTerminationGracePeriodSeconds()).isEqualTo(30);
    assertThat(p.getSpec().getContainers(0).getImagePullPolicy()).isEqualTo("IfNotPresent");
    assertThat(p.getStatus().getPhase()).isEqualTo("Pending");

    Deployment d = Deployment.newBuilder().setMetadata(ObjectMeta.newBuilder().setName("web"))
        .setSpec(DeploymentSpec.newBuilder().setSelector(LabelSelector.newBuilder().putMatchLabels("app", "web"))
            .setTemplate(PodTemplateSpec.newBuilder().setMetadata(ObjectMeta.newBuilder().putLabels("app", "web"))
                .setSpec(PodSpec.newBuilder().addContainers(Container.newBuilder().setName("c").setImage("nginx"))))).build();
    Deployment created = Deployment.parseFrom(api().create(CreateRequest.newBuilder().setRef(ref("apps", "deployments", "default", ""))
        .setObject(raw(d)).build()).getData());
    assertThat(created.getApiVersion()).isEqualTo("apps/v1");
    assertThat(created.getSpec().getReplicas()).isEqualTo(1);
    assertThat(created.getSpec().getRevisionHistoryLimit()).isEqualTo(10);
    assertThat(created.getSpec().getStrategy().getType()).isEqualTo("RollingUpdate");
    assertThat(created.getSpec().getStrategy().getRollingUpdate().getMaxSurge().getStrVal()).isEqualTo("25%");
    assertThat(created.getSpec().getStrategy().getRollingUpdate().getMaxUnavailable().getStrVal()).isEqualTo("25%");
  }

  @Test
  void invalidObjectsAreRefusedWithFieldPaths() {
    Container bad = Container.newBuilder().setName("Bad_Name").setResources(ResourceRequirements.newBuilder().putRequests("cpu", "lots")).build();
    Pod p = pod("UPPER", bad).toBuilder().setMetadata(ObjectMeta.newBuilder().setName("UPPER").putLabels("app", "bad value!")).build();
    assertThatThrownBy(() -> api().create(CreateRequest.newBuilder().setRef(ref("", "pods", "default", "")).setObject(raw(p)).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
          assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.INVALID_ARGUMENT);
          Status s = status(e);
          assertThat(s.getCode()).isEqualTo(422);
          assertThat(s.getReason()).isEqualTo("Invalid");
          assertThat(s.getDetails().getCausesList()).extracting(c -> c.getField()).contains(
              "metadata.name", "metadata.labels[app]", "spec.containers[0].name", "spec.containers[0].image",
              "spec.containers[0].resources.requests[cpu]");
        });
    assertThatThrownBy(() -> api().get(GetRequest.newBuilder().setRef(ref("", "pods", "default", "UPPER")).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.NOT_FOUND));
  }

  @Test
  void missingAndTerminatingNamespacesRefuseNewObjects() throws Exception {
    Pod p = pod("p", Container.newBuilder().setName("c").setImage("busybox").build());
    assertThatThrownBy(() -> api().create(CreateRequest.newBuilder().setRef(ref("", "pods", "nowhere", "")).setObject(raw(p)).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getDescription())
            .isEqualTo("namespaces \"nowhere\" not found"));
    api().create(CreateRequest.newBuilder().setRef(ref("", "namespaces", "", ""))
        .setObject(raw(Namespace.newBuilder().setMetadata(ObjectMeta.newBuilder().setName("doomed")).build())).build());
    DeleteResponse del = api().delete(DeleteRequest.newBuilder().setRef(ref("", "namespaces", "", "doomed")).build());
    assertThat(del.getPending()).as("the namespace finalizer keeps it while it terminates").isTrue();
    Namespace n = Namespace.parseFrom(del.getObject().getData());
    assertThat(n.getStatus().getPhase()).isEqualTo("Terminating");
    assertThat(n.getMetadata().getDeletionTimestamp()).isNotEmpty();
    assertThatThrownBy(() -> api().create(CreateRequest.newBuilder().setRef(ref("", "pods", "doomed", "")).setObject(raw(p)).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
          assertThat(status(e).getCode()).isEqualTo(403);
          assertThat(e.getStatus().getDescription()).contains("because it is being terminated");
        });
  }

  @Test
  void finalizersBlockRemovalUntilTheyAreGoneAndBoundPodsDeleteGracefully() throws Exception {
    Pod withFinalizer = pod("fin", Container.newBuilder().setName("c").setImage("busybox").build()).toBuilder()
        .setMetadata(ObjectMeta.newBuilder().setName("fin").addFinalizers("example.com/hold")).build();
    api().create(CreateRequest.newBuilder().setRef(ref("", "pods", "default", "")).setObject(raw(withFinalizer)).build());
    DeleteResponse del = api().delete(DeleteRequest.newBuilder().setRef(ref("", "pods", "default", "fin")).build());
    assertThat(del.getPending()).isTrue();
    Pod marked = Pod.parseFrom(api().get(GetRequest.newBuilder().setRef(ref("", "pods", "default", "fin")).build()).getData());
    assertThat(marked.getMetadata().getDeletionTimestamp()).isNotEmpty();
    // removing the last finalizer removes the object
    Pod released = marked.toBuilder().setMetadata(marked.getMetadata().toBuilder().clearFinalizers()).build();
    api().update(UpdateRequest.newBuilder().setRef(ref("", "pods", "default", "fin")).setObject(raw(released)).build());
    assertThatThrownBy(() -> api().get(GetRequest.newBuilder().setRef(ref("", "pods", "default", "fin")).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.NOT_FOUND));

    // a pod on a node gets a deletionTimestamp and its grace period; grace 0 (the node agent) removes it
    Pod onNode = pod("bound", Container.newBuilder().setName("c").setImage("busybox").build());
    onNode = onNode.toBuilder().setSpec(onNode.getSpec().toBuilder().setNodeName("n1")).build();
    api().create(CreateRequest.newBuilder().setRef(ref("", "pods", "default", "")).setObject(raw(onNode)).build());
    DeleteResponse graceful = api().delete(DeleteRequest.newBuilder().setRef(ref("", "pods", "default", "bound")).build());
    assertThat(graceful.getPending()).isTrue();
    assertThat(Pod.parseFrom(graceful.getObject().getData()).getMetadata().getDeletionGracePeriodSeconds()).isEqualTo(30);
    DeleteResponse now = api().delete(DeleteRequest.newBuilder().setRef(ref("", "pods", "default", "bound")).setGracePeriodSeconds(0).build());
    assertThat(now.getPending()).isFalse();
    assertThatThrownBy(() -> api().get(GetRequest.newBuilder().setRef(ref("", "pods", "default", "bound")).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.NOT_FOUND));
  }

  @Test
  void mergePatchAndStatusSubresource() throws Exception {
    Pod p = Pod.parseFrom(api().create(CreateRequest.newBuilder().setRef(ref("", "pods", "default", ""))
        .setObject(raw(pod("patched", Container.newBuilder().setName("c").setImage("busybox").build()))).build()).getData());
    Pod patched = Pod.parseFrom(api().patch(io.capstan.api.server.v1.PatchRequest.newBuilder().setRef(ref("", "pods", "default", "patched"))
        .setMergePatch("{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"status\":{\"phase\":\"Running\"}}").build()).getData());
    assertThat(patched.getMetadata().getLabelsMap()).containsEntry("app", "web");
    assertThat(patched.getStatus().getPhase()).as("an object patch leaves status alone").isEqualTo("Pending");
    Pod statusPatched = Pod.parseFrom(api().patch(io.capstan.api.server.v1.PatchRequest.newBuilder().setRef(ref("", "pods", "default", "patched"))
        .setStatus(true).setMergePatch("{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.9\"}}").build()).getData());
    assertThat(statusPatched.getStatus().getPhase()).isEqualTo("Running");
    assertThat(statusPatched.getStatus().getPodIp()).isEqualTo("10.0.0.9");
    assertThat(statusPatched.getMetadata().getLabelsMap()).containsEntry("app", "web");
    // UpdateStatus with a stale version conflicts
    assertThatThrownBy(() -> api().updateStatus(UpdateRequest.newBuilder().setRef(ref("", "pods", "default", "patched")).setObject(raw(p)).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.ABORTED));
    // a null removes a label; bad JSON is a 400
    Pod removed = Pod.parseFrom(api().patch(io.capstan.api.server.v1.PatchRequest.newBuilder().setRef(ref("", "pods", "default", "patched"))
        .setMergePatch("{\"metadata\":{\"labels\":{\"app\":null}}}").build()).getData());
    assertThat(removed.getMetadata().getLabelsMap()).doesNotContainKey("app");
    assertThatThrownBy(() -> api().patch(io.capstan.api.server.v1.PatchRequest.newBuilder().setRef(ref("", "pods", "default", "patched"))
        .setMergePatch("{not json").build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.INVALID_ARGUMENT));
  }
}
