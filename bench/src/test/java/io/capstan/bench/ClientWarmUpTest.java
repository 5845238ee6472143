package io.capstan.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class ClientWarmUpTest {
  private final List<Integer> rounds = new ArrayList<>();

  private long round(int ops) {
    rounds.add(ops);
    return 0;
  }

  @Test
  void noWarmUpAskedForRunsNothing() throws Exception {
    ClientWarmUp.run("test", 0, 1, 10, 60, this::round);
    assertThat(rounds).isEmpty();
  }

  @Test
  void aLimitOfZeroRunsExactlyTheOperationsAskedFor() throws Exception {
    ClientWarmUp.run("test", 100, 1, 10, 0, this::round);
    assertThat(rounds).containsExactly(100);
  }

  @Test
  void aRunWithManyInFlightDoesNotWaitForTheJit() throws Exception {
    ClientWarmUp.run("test", 100, ClientWarmUp.LATENCY_RUN + 1, 10, 60, this::round);
    assertThat(rounds).containsExactly(100);
  }

  @Test
  void aLatencyRunGoesOnUntilTheJitIsQuietThenStops() throws Exception {
    long start = System.nanoTime();
    long[] first = {0};
    long[] later = {0};
    boolean[] otherSize = {false};
    // rounds that compile nothing new: the JIT falls quiet within a few of the one-second windows
    ClientWarmUp.run("test", 100, 1, 10, 60, ops -> {
      if (first[0] == 0) {
        first[0] = ops;
      } else {
        later[0]++;
        otherSize[0] |= ops != 10;
      }
      return 0;
    });
    long took = System.nanoTime() - start;
    assertThat(first[0]).isEqualTo(100);
    assertThat(later[0]).as("rounds after the first").isPositive();
    assertThat(otherSize[0]).as("a later round of another size than 10").isFalse();
    assertThat(took).as("went on for at least the quiet one-second windows in a row")
        .isGreaterThanOrEqualTo(TimeUnit.SECONDS.toNanos(ClientWarmUp.QUIET_WINDOWS));
    assertThat(took).as("stopped once quiet, well before the 60 s limit").isLessThan(TimeUnit.SECONDS.toNanos(30));
  }

  @Test
  void failuresEndTheWarmUpAtOnce() throws Exception {
    ClientWarmUp.run("test", 100, 1, 10, 60, ops -> {
      rounds.add(ops);
      return 3;
    });
    assertThat(rounds).as("no rounds after the one that failed").containsExactly(100);
    rounds.clear();
    ClientWarmUp.run("test", 100, 1, 10, 60, ops -> {
      rounds.add(ops);
      return rounds.size() >= 3 ? 1 : 0;
    });
    assertThat(rounds).containsExactly(100, 10, 10);
  }
}
