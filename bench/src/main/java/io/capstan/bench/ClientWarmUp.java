package io.capstan.bench;

import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Option;

/**
 * The benchmark client's own warm-up. Each {@code capstan bench} run is a fresh JVM, and its C2
 * compiler, left to itself, compiles through the measured operations: on a small machine it then
 * takes a CPU from the servers being measured (on 2 vCPUs, 18–35% of both CPUs during the slowest
 * serial puts, for Capstan and etcd alike: docs/performance-history.md, "What the CPUs ran during
 * those stalls"); serial puts through a 1-member kvstore keep it compiling for 30-50% of a CPU for
 * ~13 s, ~10,000 puts. So after the operations {@code --warmup} asks for, a run with few requests
 * in flight (a latency run) goes on in rounds until the client's JIT has compiled for less than 1%
 * of each of two whole seconds in a row, or {@code --warmup-limit} seconds have passed since the warm-up began (0:
 * exactly {@code --warmup} operations). Runs with many in flight do not: they would write ~3,000
 * puts a second for as long, against the store's space quota.
 */
final class ClientWarmUp {
  /**
   * Compilation time, as a share of the wall-clock time, below which a window counts as quiet. At
   * 2% (until 2026-12-07, 23:30 UTC) a warm-up that stopped right at the threshold let the client's
   * C2 take 28% of the CPUs in etcd's slowest serial puts after it (put-steps, 21:24 UTC).
   */
  static final double QUIET = 0.01;
  /** Quiet one-second windows in a row that end the warm-up. */
  static final int QUIET_WINDOWS = 2;
  private static final long WINDOW_NANOS = TimeUnit.SECONDS.toNanos(1);
  /** Requests in flight up to which a run counts as a latency run. */
  static final int LATENCY_RUN = 4;

  /** The option of every workload that warms up. */
  static final class Limit {
    @Option(names = "--warmup-limit", defaultValue = "60", description = "After the warm-up operations asked for, go on "
        + "warming up until the client's own JIT is quiet, for at most this many seconds (0: no more; default: ${DEFAULT-VALUE}).")
    int limit;
  }

  /** Runs {@code ops} unmeasured operations; returns how many failed. */
  interface Round {
    long run(int ops) throws Exception;
  }

  private ClientWarmUp() {}

  /**
   * Runs {@code minOps} operations, then, if at most {@link #LATENCY_RUN} are in flight, rounds of
   * {@code roundOps} until the JIT is quiet or the limit has passed; says on stderr what it did
   * (stdout carries the figures).
   */
  static void run(String what, int minOps, int inFlight, int roundOps, int limitSeconds, Round round) throws Exception {
    if (minOps <= 0) {
      return;
    }
    long start = System.nanoTime();
    long failed = round.run(minOps);
    CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
    if (limitSeconds <= 0 || inFlight > LATENCY_RUN || jit == null || !jit.isCompilationTimeMonitoringSupported()) {
      return;
    }
    long deadline = start + TimeUnit.SECONDS.toNanos(limitSeconds);
    long ops = minOps;
    long windowStart = System.nanoTime();
    long compiledMs = jit.getTotalCompilationTime();
    int quietWindows = 0;
    double share = Double.NaN;
    // a store that refuses the operations (e.g. over its space quota) would refuse a minute of them
    while (failed == 0 && quietWindows < QUIET_WINDOWS && System.nanoTime() < deadline) {
      failed = round.run(roundOps);
      ops += roundOps;
      long now = System.nanoTime();
      if (now - windowStart >= WINDOW_NANOS) {
        long c = jit.getTotalCompilationTime();
        share = (c - compiledMs) / ((now - windowStart) / 1e6);
        quietWindows = share < QUIET ? quietWindows + 1 : 0;
        windowStart = now;
        compiledMs = c;
      }
    }
    if (failed > 0) {
      System.err.printf("%s: client warm-up stopped after %d operations: %d of its last round failed%n", what, ops, failed);
      return;
    }
    System.err.printf("%s: client warm-up %d operations, %.1f s, %s (compiling %.1f%% of the last second)%n", what, ops,
        (System.nanoTime() - start) / 1e9, quietWindows >= QUIET_WINDOWS ? "until its JIT was quiet" : "stopped at --warmup-limit", share * 100);
  }
}
