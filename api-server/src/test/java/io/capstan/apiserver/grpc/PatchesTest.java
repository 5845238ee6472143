package io.capstan.apiserver.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.api.apps.v1.Deployment;
import io.capstan.api.core.v1.Pod;
import io.capstan.apiserver.rest.KubeJson;
import io.capstan.apiserver.storage.ApiException;
import org.junit.jupiter.api.Test;

/** Merge, strategic merge and JSON patches on the Kubernetes JSON form of objects. */
class PatchesTest {
  private static Pod pod() {
    return (Pod) KubeJson.fromJson("""
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"1","b":"2"},"finalizers":["x","y"]},
         "spec":{"containers":[
            {"name":"web","image":"nginx:1.27","ports":[{"containerPort":80},{"containerPort":443}],
             "env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]},
            {"name":"sidecar","image":"busybox"}],
          "tolerations":[{"key":"k1","operator":"Exists"},{"key":"k2","operator":"Exists"}]}}
        """.getBytes(), Pod.getDefaultInstance());
  }

  private static Pod strategic(Pod p, String patch) {
    return (Pod) Patches.apply(p, patch, Patches.STRATEGIC);
  }

  @Test
  void strategicPatchMergesListsByTheirKeysWhereAMergePatchReplacesThem() {
    String patch = """
        {"spec":{"$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"}],
                 "containers":[{"name":"web","image":"nginx:1.28","env":[{"name":"B","value":"3"},{"name":"C","value":"4"}]}]}}
        """;
    Pod p = strategic(pod(), patch);
    assertThat(p.getSpec().getContainersList()).extracting(c -> c.getName()).containsExactly("web", "sidecar");
    var web = p.getSpec().getContainers(0);
    assertThat(web.getImage()).isEqualTo("nginx:1.28");
    assertThat(web.getPortsList()).extracting(x -> x.getContainerPort()).containsExactly(80, 443);
    assertThat(web.getEnvList()).extracting(e -> e.getName() + "=" + e.getValue()).containsExactly("A=1", "B=3", "C=4");

    Pod merged = (Pod) Patches.apply(pod(), patch, Patches.MERGE);
    assertThat(merged.getSpec().getContainersList()).as("a merge patch replaces the list").hasSize(1);
    assertThat(merged.getSpec().getContainers(0).getPortsList()).isEmpty();
  }

  @Test
  void strategicDirectivesDeleteReplaceReorderAndRetain() {
    Pod p = strategic(pod(), """
        {"metadata":{"labels":{"a":null,"c":"3"},"finalizers":["z"],"$deleteFromPrimitiveList/finalizers":["x"]},
         "spec":{"containers":[{"name":"sidecar","$patch":"delete"},
                               {"name":"web","ports":[{"containerPort":443,"$patch":"delete"},{"containerPort":8080}]}],
                 "tolerations":[{"key":"k3","operator":"Exists"}]}}
        """);
    assertThat(p.getMetadata().getLabelsMap()).containsOnlyKeys("b", "c");
    assertThat(p.getMetadata().getFinalizersList()).containsExactly("y", "z");
    assertThat(p.getSpec().getContainersList()).extracting(c -> c.getName()).containsExactly("web");
    assertThat(p.getSpec().getContainers(0).getPortsList()).extracting(x -> x.getContainerPort()).containsExactly(80, 8080);
    assertThat(p.getSpec().getTolerationsList()).as("a list without a merge key is replaced").extracting(t -> t.getKey())
        .containsExactly("k3");

    Pod replaced = strategic(pod(), "{\"spec\":{\"containers\":[{\"$patch\":\"replace\"},{\"name\":\"only\",\"image\":\"x\"}]}}");
    assertThat(replaced.getSpec().getContainersList()).extracting(c -> c.getName()).containsExactly("only");

    Pod reordered = strategic(pod(), "{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"sidecar\"},{\"name\":\"web\"}]}}");
    assertThat(reordered.getSpec().getContainersList()).extracting(c -> c.getName()).containsExactly("sidecar", "web");

    Deployment d = (Deployment) KubeJson.fromJson("""
        {"metadata":{"name":"d"},"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":1}}}}
        """.getBytes(), Deployment.getDefaultInstance());
    Deployment recreate = (Deployment) Patches.apply(d,
        "{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],\"type\":\"Recreate\"}}}", Patches.STRATEGIC);
    assertThat(recreate.getSpec().getStrategy().getType()).isEqualTo("Recreate");
    assertThat(recreate.getSpec().getStrategy().hasRollingUpdate()).isFalse();
    Deployment surge = (Deployment) Patches.apply(d, "{\"spec\":{\"strategy\":{\"rollingUpdate\":{\"maxSurge\":\"50%\"}}}}", Patches.MERGE);
    assertThat(surge.getSpec().getStrategy().getRollingUpdate().getMaxSurge().getStrVal()).isEqualTo("50%");
    assertThat(surge.getSpec().getStrategy().getRollingUpdate().getMaxUnavailable().getIntVal()).isEqualTo(1);
  }

  @Test
  void jsonPatchOperationsAndTheirFailures() {
    Pod p = (Pod) Patches.apply(pod(), """
        [{"op":"add","path":"/metadata/labels/new~1key","value":"v"},
         {"op":"replace","path":"/spec/containers/1/image","value":"busybox:1.36"},
         {"op":"add","path":"/spec/containers/0/ports/-","value":{"containerPort":9090}},
         {"op":"remove","path":"/spec/tolerations/0"},
         {"op":"copy","from":"/metadata/labels/a","path":"/metadata/labels/copied"},
         {"op":"test","path":"/metadata/name","value":"p"}]
        """, Patches.JSON_PATCH);
    assertThat(p.getMetadata().getLabelsMap()).containsEntry("new/key", "v").containsEntry("copied", "1");
    assertThat(p.getSpec().getContainers(1).getImage()).isEqualTo("busybox:1.36");
    assertThat(p.getSpec().getContainers(0).getPortsList()).extracting(x -> x.getContainerPort()).containsExactly(80, 443, 9090);
    assertThat(p.getSpec().getTolerationsList()).extracting(t -> t.getKey()).containsExactly("k2");

    assertThatThrownBy(() -> Patches.apply(pod(), "[{\"op\":\"test\",\"path\":\"/metadata/name\",\"value\":\"q\"}]", Patches.JSON_PATCH))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.code()).isEqualTo(422));
    assertThatThrownBy(() -> Patches.apply(pod(), "[{\"op\":\"replace\",\"path\":\"/spec/nothing\",\"value\":1}]", Patches.JSON_PATCH))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.code()).isEqualTo(422));
    assertThatThrownBy(() -> Patches.apply(pod(), "{\"op\":\"add\"}", Patches.JSON_PATCH))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.code()).isEqualTo(400));
    assertThatThrownBy(() -> strategic(pod(), "{\"spec\":{\"containers\":[{\"image\":\"no-key\"}]}}"))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.getMessage()).contains("merge key \"name\""));
  }
}
