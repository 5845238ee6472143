package io.capstan.bench;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;

/** Runs {@code total} async operations with at most {@code inFlight} outstanding; times each. */
final class LoadDriver {
  /** What a run measured. */
  record Result(int total, long errors, long elapsedNanos, Latencies latencies) {
    String line(String name) {
      double opsPerSec = (total - errors) / (elapsedNanos / 1e9);
      return String.format("%s: %.0f ops/s %s errors=%d", name, opsPerSec, latencies.summary(), errors);
    }
  }

  private LoadDriver() {}

  /**
   * The client's warm-up before a run of {@code op} ({@link ClientWarmUp}): {@code minOps} of them,
   * then rounds of a fraction of a second each while the client's JIT still compiles.
   */
  static void warmUp(String what, int minOps, int inFlight, int limitSeconds, IntFunction<ListenableFuture<?>> op)
      throws Exception {
    ClientWarmUp.run(what, minOps, inFlight, Math.max(100, inFlight * 10), limitSeconds, n -> run(n, inFlight, op).errors());
  }

  static Result run(int total, int inFlight, IntFunction<ListenableFuture<?>> op) throws InterruptedException {
    return run(total, inFlight, 0, op);
  }

  /**
   * As {@link #run(int, int, IntFunction)}, and when {@code ratePerSecond} is positive, starts
   * operations on a fixed schedule (open loop) and times each from its scheduled start, so a
   * stall counts against every operation it delays (no coordinated omission).
   */
  static Result run(int total, int inFlight, int ratePerSecond, IntFunction<ListenableFuture<?>> op)
      throws InterruptedException {
    Semaphore permits = new Semaphore(inFlight);
    long interval = ratePerSecond > 0 ? 1_000_000_000L / ratePerSecond : 0;
    Latencies lat = new Latencies();
    AtomicLong errors = new AtomicLong();
    AtomicLong firstError = new AtomicLong();
    long start = System.nanoTime();
    for (int i = 0; i < total; i++) {
      long scheduled = start + i * interval;
      if (interval > 0) {
        Pacer.waitUntil(scheduled);
      }
      permits.acquire();
      long t0 = interval > 0 ? scheduled : System.nanoTime();
      ListenableFuture<?> f;
      try {
        f = op.apply(i);
      } catch (RuntimeException e) {
        errors.incrementAndGet();
        permits.release();
        continue;
      }
      Futures.addCallback(f, new FutureCallback<Object>() {
        @Override
        public void onSuccess(Object result) {
          lat.add(System.nanoTime() - t0);
          permits.release();
        }

        @Override
        public void onFailure(Throwable t) {
          if (errors.incrementAndGet() == 1 && firstError.compareAndSet(0, 1)) {
            System.err.println("first error: " + t);
          }
          permits.release();
        }
      }, MoreExecutors.directExecutor());
    }
    permits.acquire(inFlight);
    return new Result(total, errors.get(), System.nanoTime() - start, lat);
  }
}
