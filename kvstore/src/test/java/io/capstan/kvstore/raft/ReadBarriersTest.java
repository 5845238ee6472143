package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** Read barriers share ReadIndex rounds without answering a read with a round that began before it. */
class ReadBarriersTest {
  private final List<CompletableFuture<Void>> rounds = new ArrayList<>();
  /** Where following rounds are started: run by hand, to see that completion does not start them itself. */
  private final List<Runnable> starts = new ArrayList<>();
  private final ReadBarriers<Void> barriers = new ReadBarriers<>(() -> {
    CompletableFuture<Void> r = new CompletableFuture<>();
    rounds.add(r);
    return r;
  }, starts::add);

  private void runStarts() {
    List<Runnable> now = new ArrayList<>(starts);
    starts.clear();
    now.forEach(Runnable::run);
  }

  @Test
  void readsArrivingDuringARoundWaitForTheNextOneAndShareIt() {
    CompletableFuture<Void> first = barriers.await();
    assertThat(rounds).hasSize(1);
    List<CompletableFuture<Void>> later = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      later.add(barriers.await());
    }
    assertThat(rounds).as("one round in flight at a time").hasSize(1);

    rounds.get(0).complete(null);
    assertThat(first).isCompleted();
    assertThat(later).as("a round that began before a read does not answer it").noneMatch(CompletableFuture::isDone);
    assertThat(rounds).as("the next round is not started on the thread that completed the last one").hasSize(1);
    runStarts();
    assertThat(rounds).as("the waiting reads share the next round").hasSize(2);

    rounds.get(1).complete(null);
    runStarts();
    assertThat(later).allMatch(f -> f.isDone() && !f.isCompletedExceptionally());
    assertThat(rounds).hasSize(2);
    assertThat(barriers.batchSizes().getSnapshot().getMax()).isEqualTo(10);
  }

  @Test
  void aRoundNobodyWaitsBehindWakesNoStarter() {
    for (int i = 0; i < 3; i++) {
      CompletableFuture<Void> read = barriers.await();
      rounds.get(i).complete(null);
      assertThat(read).isCompleted();
      assertThat(starts).as("serial reads: nothing to start after round " + i).isEmpty();
    }
    assertThat(rounds).as("each serial read starts its own round at once").hasSize(3);
  }

  @Test
  void aFailedRoundFailsItsReadsAndTheNextRoundStillRuns() {
    CompletableFuture<Void> first = barriers.await();
    CompletableFuture<Void> second = barriers.await();
    rounds.get(0).completeExceptionally(new IllegalStateException("no leader"));
    assertThat(first).isCompletedExceptionally();
    assertThat(second).isNotDone();
    runStarts();
    rounds.get(1).complete(null);
    runStarts();
    assertThat(second).isCompleted();
    CompletableFuture<Void> third = barriers.await();
    assertThat(rounds).as("an idle member starts a round at once").hasSize(3);
    rounds.get(2).complete(null);
    assertThat(third).isCompleted();
  }
}
