package org.apache.ratis.server.impl;

import java.lang.reflect.Field;
import java.util.List;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.thirdparty.io.netty.util.internal.ThreadExecutorMap;

/**
 * Runs the tasks a Ratis member gives its server executor on the calling thread when that thread
 * is one of Ratis' Netty event loops, which would only wait for the task anyway.
 *
 * <p>Ratis' Netty transport serves an AppendEntries on the peer server's event loop and blocks
 * that thread until the reply is ready ({@code RaftServerImpl.appendEntries} joins {@code
 * appendEntriesAsync}). On the way, Ratis 3.3.0 hands an entry to three other threads before the
 * log worker writes it and to one after: it orders the append behind the one before on a chain of
 * futures whose steps run in the JVM's common pool ({@code ServerImplUtils.NavigableIndices}),
 * appends to the log on its server executor ({@code appendLog}'s {@code thenComposeAsync}), and
 * builds the reply on the server executor once the log worker has written the entry ({@code
 * whenCompleteAsync}). The commit news that follows a serial put (an empty AppendEntries, whose
 * every step is ready at once) goes through the server executor too. Measured with
 * bench/thread-cpu.sh (2026-12-07, serial puts through a follower): a follower's server-executor
 * threads woke ~3 times a put and the common pool once; with this executor (and the chain's
 * steps on it, {@link #chainAppendsOn}) the server executor wakes once a put (the reply after the
 * write) and the common pool not at all, ~4 fewer wake-ups a follower and put. The reply after the
 * write still goes through the pool, as the log worker completes the write: it must not take the
 * log's lock there (a thread that holds the lock may be waiting for room in the worker's queue).
 *
 * <p>Every other caller (the gRPC transport's handler threads, the leader's appender threads that
 * ask a follower to start an election in a leadership transfer) gets the pool as before. The pool
 * is shut down with the member, as Ratis does.
 *
 * <p>It sits in Ratis' package because {@code RaftServerImpl}'s executor is private to it (set
 * here by reflection once, right after the member is created); Capstan runs on the class path,
 * where a package may span jars. Recheck on every Ratis upgrade.
 */
public final class ServerExecutorShortcut extends AbstractExecutorService {
  private final ExecutorService pool;
  private final LongAdder inline = new LongAdder();
  private volatile boolean chained;

  private ServerExecutorShortcut(ExecutorService pool) {
    this.pool = pool;
  }

  /** The shortcut in front of {@code pool}, for tests. */
  static ServerExecutorShortcut wrap(ExecutorService pool) {
    return new ServerExecutorShortcut(pool);
  }

  /**
   * Puts the shortcut in front of {@code division}'s server executor; returns it, or null when
   * this Ratis has no such field (then nothing changed).
   */
  public static ServerExecutorShortcut install(RaftServer.Division division) {
    try {
      Field f = RaftServerImpl.class.getDeclaredField("serverExecutor");
      f.setAccessible(true);
      Object current = f.get(division);
      if (current instanceof ServerExecutorShortcut s) {
        return s;
      }
      ServerExecutorShortcut shortcut = new ServerExecutorShortcut((ExecutorService) current);
      f.set(division, shortcut);
      try {
        shortcut.chainAppendsOn(division);
        shortcut.chained = true;
      } catch (ReflectiveOperationException | RuntimeException e) {
        // the appends keep their hand-off to the common pool; chained() says so
      }
      return shortcut;
    } catch (ReflectiveOperationException | RuntimeException e) {
      return null;
    }
  }

  /**
   * Ratis orders a follower's log appends on a chain of futures ({@code
   * ServerImplUtils.NavigableIndices}: each append is {@code thenComposeAsync} on the one before,
   * without an executor, so in the JVM's common pool: one more hand-off a put). This swaps the
   * chain's head for a future that runs those steps through this executor instead, and whose
   * descendants do too; the new head completes as the old one does, so the order is kept.
   */
  private void chainAppendsOn(RaftServer.Division division) throws ReflectiveOperationException {
    Field indicesField = RaftServerImpl.class.getDeclaredField("appendLogTermIndices");
    indicesField.setAccessible(true);
    Object indices = indicesField.get(division);
    Field chainField = indices.getClass().getDeclaredField("future");
    chainField.setAccessible(true);
    @SuppressWarnings("unchecked")
    AtomicReference<CompletableFuture<Void>> chain = (AtomicReference<CompletableFuture<Void>>) chainField.get(indices);
    chain.updateAndGet(previous -> {
      StepFuture<Void> head = new StepFuture<>(this);
      previous.whenComplete((v, t) -> {
        if (t != null) {
          head.completeExceptionally(t);
        } else {
          head.complete(v);
        }
      });
      return head;
    });
  }

  /** A future whose async steps without an executor, and those of every future made from it, run on {@code steps}. */
  static final class StepFuture<T> extends CompletableFuture<T> {
    private final Executor steps;

    StepFuture(Executor steps) {
      this.steps = steps;
    }

    @Override
    public Executor defaultExecutor() {
      return steps;
    }

    @Override
    public <U> CompletableFuture<U> newIncompleteFuture() {
      return new StepFuture<>(steps);
    }
  }

  /** Whether the follower's log appends run through this executor too ({@link #chainAppendsOn}). */
  public boolean chained() {
    return chained;
  }

  /** Tasks run on the calling event loop so far. */
  public long inlineRuns() {
    return inline.sum();
  }

  @Override
  public void execute(Runnable task) {
    if (ThreadExecutorMap.currentExecutor() != null && !pool.isShutdown()) {
      inline.increment();
      task.run();
    } else {
      pool.execute(task);
    }
  }

  @Override
  public void shutdown() {
    pool.shutdown();
  }

  @Override
  public List<Runnable> shutdownNow() {
    return pool.shutdownNow();
  }

  @Override
  public boolean isShutdown() {
    return pool.isShutdown();
  }

  @Override
  public boolean isTerminated() {
    return pool.isTerminated();
  }

  @Override
  public boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException {
    return pool.awaitTermination(timeout, unit);
  }
}
