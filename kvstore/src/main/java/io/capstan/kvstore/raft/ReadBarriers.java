package io.capstan.kvstore.raft;

import com.codahale.metrics.Histogram;
import com.codahale.metrics.SlidingTimeWindowArrayReservoir;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Coalesces linearizable read barriers (a no-op log entry each: see {@code RaftNode#readIndexRound}),
 * as etcd's read loop coalesces ReadIndex rounds: at most one barrier
 * is in flight per member; reads that arrive meanwhile wait together for the next one, which
 * starts when the current one ends. A read is answered only by a barrier that started after it
 * arrived, so it still sees every write acknowledged before it arrived: linearizability is
 * kept, and 64 concurrent reads cost about two rounds instead of 64.
 *
 * <p>A round that follows another is started on {@code starter}, never on the thread that
 * completed the previous one: Ratis completes reads on its apply thread while holding its read
 * queue's lock, and starting a round there (Ratis' submit blocks until a client thread has queued
 * the request under that lock) deadlocked the member.
 */
final class ReadBarriers<T> {
  private final Supplier<CompletableFuture<T>> barrier;
  private final java.util.concurrent.Executor starter;
  private final Histogram batchSizes = new Histogram(new SlidingTimeWindowArrayReservoir(1, TimeUnit.MINUTES));
  private CompletableFuture<T> next;
  private int nextSize;
  private boolean inFlight;

  /**
   * @param barrier starts one round (a ReadIndex round, completing when this member has applied up
   *     to its index; or a leadership check, completing with the term confirmed); every call
   *     waiting for a round gets its outcome
   * @param starter where rounds that follow a completed one are started
   */
  ReadBarriers(Supplier<CompletableFuture<T>> barrier, java.util.concurrent.Executor starter) {
    this.barrier = barrier;
    this.starter = starter;
  }

  /** Completes, with its outcome, once a round that started after this call has completed. */
  CompletableFuture<T> await() {
    CompletableFuture<T> mine;
    synchronized (this) {
      if (next == null) {
        next = new CompletableFuture<>();
        nextSize = 0;
      }
      mine = next;
      nextSize++;
      if (inFlight) {
        return mine;
      }
    }
    startNext();
    return mine;
  }

  private void startNext() {
    CompletableFuture<T> batch;
    synchronized (this) {
      if (inFlight || next == null) {
        return;
      }
      batch = next;
      batchSizes.update(nextSize);
      next = null;
      inFlight = true;
    }
    CompletableFuture<T> round;
    try {
      round = barrier.get();
    } catch (RuntimeException e) {
      round = CompletableFuture.failedFuture(e);
    }
    round.whenComplete((v, error) -> {
      boolean waiting;
      synchronized (this) {
        inFlight = false;
        // a read that arrives after this check starts its round itself: it sees none in flight
        waiting = next != null;
      }
      if (waiting) {
        try {
          starter.execute(this::startNext);
        } catch (java.util.concurrent.RejectedExecutionException shutDown) {
          failWaiting(shutDown);
        }
      }
      if (error != null) {
        batch.completeExceptionally(error);
      } else {
        batch.complete(v);
      }
    });
  }

  private void failWaiting(Throwable cause) {
    CompletableFuture<T> waiting;
    synchronized (this) {
      waiting = next;
      next = null;
    }
    if (waiting != null) {
      waiting.completeExceptionally(cause);
    }
  }

  /** Reads answered per ReadIndex round. */
  Histogram batchSizes() {
    return batchSizes;
  }
}
