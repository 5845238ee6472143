package io.capstan.kvstore.raft;

import java.util.Iterator;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Request timeouts that cost no thread wake-up a request: {@link #within} is
 * {@link CompletableFuture#orTimeout} (the same future, failed with a {@link TimeoutException}
 * once its time is up), enforced by one sweep at most every {@link #PERIOD_MS} that drops the
 * completed futures and fails the late ones, so a timeout fires up to that much late.
 *
 * <p>{@code orTimeout} schedules a task on the JDK's one delay thread per call and cancels it at
 * completion. A task that becomes the head of an empty queue wakes that thread, so serial
 * requests, whose queue is empty between them, woke it for every timeout set: two to three times
 * a serial put on the leader and on the client's follower, ~28 µs of CPU a put on each
 * ({@code bench/thread-cpu.sh}, thread {@code CompletableFutureDelayScheduler}). Here a sweep is
 * scheduled only when a future is registered while none is, so the sweeping thread wakes at most
 * once a period while requests run and never while idle.
 */
final class Deadlines {
  /** The longest a sweep waits: how late a timeout may fire. */
  static final long PERIOD_MS = 50;

  private static final ScheduledThreadPoolExecutor SWEEPER = new ScheduledThreadPoolExecutor(1, r -> {
    Thread t = new Thread(r, "request-deadlines");
    t.setDaemon(true);
    return t;
  });
  private static final ConcurrentLinkedQueue<Deadline> PENDING = new ConcurrentLinkedQueue<>();
  private static final AtomicBoolean SCHEDULED = new AtomicBoolean();
  private static final AtomicLong SWEEPS = new AtomicLong();

  private record Deadline(CompletableFuture<?> future, long atNanos) {}

  private Deadlines() {}

  /**
   * Fails {@code future} with a {@link TimeoutException} unless it completes within
   * {@code timeoutMs} (at most {@link #PERIOD_MS} later); returns it, as {@code orTimeout} does.
   */
  static <T> CompletableFuture<T> within(CompletableFuture<T> future, long timeoutMs) {
    if (future.isDone()) {
      return future;
    }
    PENDING.add(new Deadline(future, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs)));
    if (!SCHEDULED.get() && SCHEDULED.compareAndSet(false, true)) {
      SWEEPER.schedule(Deadlines::sweep, PERIOD_MS, TimeUnit.MILLISECONDS);
    }
    return future;
  }

  private static void sweep() {
    try {
      SWEEPS.incrementAndGet();
      long now = System.nanoTime();
      for (Iterator<Deadline> it = PENDING.iterator(); it.hasNext(); ) {
        Deadline d = it.next();
        if (d.future().isDone()) {
          it.remove();
        } else if (now - d.atNanos() >= 0) {
          it.remove();
          d.future().completeExceptionally(new TimeoutException()); // its dependents run here
        }
      }
    } finally {
      // a future registered during the sweep saw SCHEDULED set and left the next sweep to this one
      SCHEDULED.set(false);
      if (!PENDING.isEmpty() && SCHEDULED.compareAndSet(false, true)) {
        SWEEPER.schedule(Deadlines::sweep, PERIOD_MS, TimeUnit.MILLISECONDS);
      }
    }
  }

  /** Futures registered and not yet dropped by a sweep (tests). */
  static int pending() {
    return PENDING.size();
  }

  /** Sweeps run so far (tests). */
  static long sweeps() {
    return SWEEPS.get();
  }
}
