package io.capstan.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.util.JsonFormat;
import io.capstan.api.apps.v1.Deployment;
import io.capstan.api.core.v1.Pod;
import org.junit.jupiter.api.Test;

/** The objects' JSON form uses Kubernetes' field names, so Kubernetes manifests read as they are. */
class KubernetesJsonNamesTest {

  @Test
  void podManifestParsesAndPrintsWithKubernetesNames() throws Exception {
    String manifest = """
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1", "controller": true}]},
         "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "nodeName": "n1",
                  "nodeSelector": {"disk": "ssd"},
                  "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"], "workingDir": "/",
                                  "env": [{"name": "A", "value": "1"}],
                                  "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                  "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
                  "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
         "status": {"phase": "Running", "podIP": "10.0.0.5", "hostIP": "192.168.1.2", "startTime": "2026-11-24T12:00:00Z",
                    "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2, "containerID": "proc://42"}]}}
        """;
    Pod.Builder b = Pod.newBuilder();
    JsonFormat.parser().merge(manifest, b);
    Pod pod = b.build();
    assertThat(pod.getStatus().getPodIp()).isEqualTo("10.0.0.5");
    assertThat(pod.getStatus().getHostIp()).isEqualTo("192.168.1.2");
    assertThat(pod.getSpec().getTerminationGracePeriodSeconds()).isEqualTo(30);
    assertThat(pod.getSpec().getContainers(0).getPorts(0).getContainerPort()).isEqualTo(8080);
    assertThat(pod.getSpec().getContainers(0).getResources().getRequestsMap()).containsEntry("cpu", "100m");
    assertThat(pod.getMetadata().getOwnerReferences(0).getController()).isTrue();

    String printed = JsonFormat.printer().print(pod);
    assertThat(printed).contains("\"apiVersion\": \"v1\"", "\"podIP\": \"10.0.0.5\"", "\"hostIP\"",
        "\"terminationGracePeriodSeconds\"", "\"containerPort\": 8080", "\"ownerReferences\"",
        "\"restartCount\"", "\"containerID\"", "\"workingDir\"");
  }

  @Test
  void optionalFieldsKeepPresence() throws Exception {
    Deployment.Builder b = Deployment.newBuilder();
    JsonFormat.parser().merge("{\"spec\": {\"replicas\": 0}}", b);
    assertThat(b.getSpec().hasReplicas()).as("replicas: 0 is set, not absent").isTrue();
    Deployment.Builder none = Deployment.newBuilder();
    JsonFormat.parser().merge("{\"spec\": {}}", none);
    assertThat(none.getSpec().hasReplicas()).isFalse();
  }
}
