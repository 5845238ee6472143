package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;

class DeadlinesTest {
  @Test
  void aFutureNotCompletedInTimeFailsWithATimeoutAtMostAPeriodLate() throws Exception {
    CompletableFuture<String> f = new CompletableFuture<>();
    long start = System.nanoTime();
    CompletableFuture<String> same = Deadlines.within(f, 200);
    assertThat(same).isSameAs(f);
    await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(5)).until(f::isDone);
    long tookMs = (System.nanoTime() - start) / 1_000_000;
    assertThat(f).isCompletedExceptionally();
    try {
      f.get();
    } catch (ExecutionException e) {
      assertThat(e.getCause()).isInstanceOf(TimeoutException.class);
    }
    // the poll above adds up to 5 ms; a loaded 2-core machine may run the sweep late
    assertThat(tookMs).isBetween(200L, 200 + Deadlines.PERIOD_MS + 500);
  }

  @Test
  void aFutureCompletedInTimeKeepsItsValue() throws Exception {
    CompletableFuture<String> f = new CompletableFuture<>();
    Deadlines.within(f, 100);
    f.complete("done");
    CompletableFuture<String> late = new CompletableFuture<>();
    Deadlines.within(late, 150); // its timeout shows that a sweep ran after the 100 ms had passed
    await().atMost(Duration.ofSeconds(5)).until(late::isDone);
    assertThat(late).isCompletedExceptionally();
    assertThat(f.get()).isEqualTo("done");
  }

  @Test
  void serialRequestsDoNotWakeTheSweeperForEachTimeout() {
    long sweepsBefore = Deadlines.sweeps();
    long start = System.nanoTime();
    int requests = 20_000;
    for (int i = 0; i < requests; i++) {
      CompletableFuture<Integer> f = new CompletableFuture<>();
      Deadlines.within(f, 7_000);
      f.complete(i);
    }
    await().atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(5)).until(() -> Deadlines.pending() == 0);
    long elapsedMs = (System.nanoTime() - start) / 1_000_000;
    // a sweep at most every period while requests are registered, and none once all are
    // dropped: not one for each (the JDK's orTimeout woke its thread for each of these)
    assertThat(Deadlines.sweeps() - sweepsBefore).isBetween(1L, elapsedMs / Deadlines.PERIOD_MS + 2);
  }

  @Test
  void dependentsOfATimedOutFutureRun() {
    CompletableFuture<String> f = new CompletableFuture<>();
    CompletableFuture<String> handled = Deadlines.within(f, 10)
        .handle((v, e) -> e instanceof TimeoutException ? "timed out" : "other: " + e);
    await().atMost(Duration.ofSeconds(5)).until(handled::isDone);
    assertThat(handled.join()).isEqualTo("timed out");
  }
}
