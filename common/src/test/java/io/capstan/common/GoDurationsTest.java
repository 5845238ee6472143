package io.capstan.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.api.Test;

class GoDurationsTest {
  @Test
  void readsGoDurations() {
    assertThat(GoDurations.parse("0")).isEqualTo(Duration.ZERO);
    assertThat(GoDurations.parse("300ms")).isEqualTo(Duration.ofMillis(300));
    assertThat(GoDurations.parse("10m")).isEqualTo(Duration.ofMinutes(10));
    assertThat(GoDurations.parse("1.5h")).isEqualTo(Duration.ofMinutes(90));
    assertThat(GoDurations.parse("2h45m30s")).isEqualTo(Duration.ofSeconds(2 * 3600 + 45 * 60 + 30));
    assertThat(GoDurations.parse("250us")).isEqualTo(Duration.ofNanos(250_000));
    assertThat(GoDurations.parse("-5s")).isEqualTo(Duration.ofSeconds(-5));
    assertThat(GoDurations.parse(".5s")).isEqualTo(Duration.ofMillis(500));
  }

  @Test
  void refusesWhatGoRefuses() {
    for (String bad : new String[] {"", "5", "1x", "h", "1h 5m", "m5", "5s!"}) {
      assertThatThrownBy(() -> GoDurations.parse(bad)).as(bad)
          .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("invalid duration '" + bad + "'");
    }
    assertThatThrownBy(() -> GoDurations.parse("9999999999h")).hasMessageContaining("too large");
    assertThatThrownBy(() -> GoDurations.parseFlag("--some-interval", "soon"))
        .hasMessageStartingWith("--some-interval: invalid duration 'soon'");
    assertThat(GoDurations.parseFlag("--some-interval", "1.5s")).isEqualTo(Duration.ofMillis(1500));
  }

  @Test
  void writesAsGoDoes() {
    assertThat(GoDurations.format(Duration.ZERO)).isEqualTo("0s");
    assertThat(GoDurations.format(Duration.ofSeconds(2))).isEqualTo("2s");
    assertThat(GoDurations.format(Duration.ofMillis(1500))).isEqualTo("1.5s");
    assertThat(GoDurations.format(Duration.ofMinutes(30))).isEqualTo("30m0s");
    assertThat(GoDurations.format(Duration.ofHours(72))).isEqualTo("72h0m0s");
    assertThat(GoDurations.format(Duration.ofSeconds(3723))).isEqualTo("1h2m3s");
    assertThat(GoDurations.format(Duration.ofMillis(300))).isEqualTo("300ms");
    assertThat(GoDurations.format(Duration.ofNanos(250_000))).isEqualTo("250µs");
    assertThat(GoDurations.format(Duration.ofNanos(7))).isEqualTo("7ns");
    assertThat(GoDurations.format(GoDurations.parse("2h45m30.5s"))).isEqualTo("2h45m30.5s");
  }
}
