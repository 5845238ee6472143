package io.capstan.common;

import java.util.concurrent.ForkJoinPool;

/**
 * Gives the JVM's common {@link ForkJoinPool} at least two threads. {@code CompletableFuture}'s
 * {@code *Async} methods without an executor use that pool only when its parallelism is 2 or more;
 * below that (the JVM's default on a 2-core machine: cores minus one) they start a new thread for
 * every task. Ratis 3.2.2 chains each AppendEntries a follower receives with
 * {@code thenComposeAsync}, so on 2 cores every replicated entry cost a follower a thread start on
 * the write path (README, performance).
 *
 * <p>Call it first thing in {@code main}, before anything touches the pool: the pool reads the
 * setting once, when it is created.
 */
public final class CommonPool {
  public static final String PARALLELISM = "java.util.concurrent.ForkJoinPool.common.parallelism";

  private CommonPool() {}

  /**
   * Sets the pool's parallelism to 2 unless it was set explicitly or the machine has more than
   * two processors; returns the pool's parallelism.
   */
  public static int atLeastTwoThreads() {
    if (System.getProperty(PARALLELISM) == null && Runtime.getRuntime().availableProcessors() <= 2) {
      System.setProperty(PARALLELISM, "2");
    }
    return ForkJoinPool.getCommonPoolParallelism();
  }
}
