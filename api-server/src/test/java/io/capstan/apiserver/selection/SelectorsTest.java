package io.capstan.apiserver.selection;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.api.core.v1.Pod;
import io.capstan.api.core.v1.PodSpec;
import io.capstan.api.core.v1.PodStatus;
import io.capstan.api.meta.v1.ObjectMeta;
import io.capstan.apiserver.storage.ApiException;
import java.util.Map;
import org.junit.jupiter.api.Test;

class SelectorsTest {
  private static Pod pod(Map<String, String> labels) {
    return Pod.newBuilder().setMetadata(ObjectMeta.newBuilder().setName("p").setNamespace("ns").putAllLabels(labels))
        .setSpec(PodSpec.newBuilder().setNodeName("n1")).setStatus(PodStatus.newBuilder().setPhase("Running")).build();
  }

  @Test
  void labelSelectorOperators() {
    Pod p = pod(Map.of("app", "web", "tier", "front", "release", "1"));
    assertThat(Selectors.labels("").test(p)).isTrue();
    assertThat(Selectors.labels("app=web").test(p)).isTrue();
    assertThat(Selectors.labels("app==web,tier=front").test(p)).isTrue();
    assertThat(Selectors.labels("app=db").test(p)).isFalse();
    assertThat(Selectors.labels("app!=db").test(p)).isTrue();
    assertThat(Selectors.labels("tier in (front, back)").test(p)).isTrue();
    assertThat(Selectors.labels("tier notin (front)").test(p)).isFalse();
    assertThat(Selectors.labels("release").test(p)).isTrue();
    assertThat(Selectors.labels("!legacy").test(p)).isTrue();
    assertThat(Selectors.labels("!release").test(p)).isFalse();
    assertThat(Selectors.labels("app=web,tier in (back)").test(p)).isFalse();
  }

  @Test
  void fieldSelectors() {
    Pod p = pod(Map.of());
    assertThat(Selectors.fields("metadata.name=p", "Pod").test(p)).isTrue();
    assertThat(Selectors.fields("metadata.namespace!=ns", "Pod").test(p)).isFalse();
    assertThat(Selectors.fields("spec.nodeName=n1,status.phase=Running", "Pod").test(p)).isTrue();
    assertThat(Selectors.fields("spec.nodeName=", "Pod").test(p)).isFalse();
    assertThatThrownBy(() -> Selectors.fields("spec.nodeName=x", "Node"))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.getMessage()).isEqualTo("field label not supported: spec.nodeName"));
    assertThatThrownBy(() -> Selectors.labels("tier in front")).isInstanceOf(ApiException.class);
  }
}
