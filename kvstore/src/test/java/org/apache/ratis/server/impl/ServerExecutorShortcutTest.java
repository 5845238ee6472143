package org.apache.ratis.server.impl;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.ratis.thirdparty.io.netty.channel.DefaultEventLoop;
import org.apache.ratis.thirdparty.io.netty.channel.EventLoop;
import org.junit.jupiter.api.Test;

/**
 * The executor Capstan puts in front of a Ratis member's server executor: a task handed to it on
 * one of Ratis' (shaded) Netty event loops runs right there, any other in the pool; the futures
 * of the follower's append chain run their steps through it. The in-cluster effect (a follower's
 * AppendEntries steps taken on the event loop): {@code io.capstan.kvstore.raft.InlineServerStepsTest}.
 */
class ServerExecutorShortcutTest {

  private static String pooledThreadName(ExecutorService pool) throws Exception {
    return pool.submit(() -> Thread.currentThread().getName()).get(10, TimeUnit.SECONDS);
  }

  @Test
  void aTaskGivenOnARatisEventLoopRunsThereAndAnyOtherInThePool() throws Exception {
    ExecutorService pool = Executors.newSingleThreadExecutor(r -> new Thread(r, "server-pool"));
    EventLoop loop = new DefaultEventLoop();
    try {
      ServerExecutorShortcut shortcut = ServerExecutorShortcut.wrap(pool);
      Thread loopThread = loop.submit(Thread::currentThread).get(10, TimeUnit.SECONDS);

      AtomicReference<Thread> ranOn = new AtomicReference<>();
      loop.submit(() -> shortcut.execute(() -> ranOn.set(Thread.currentThread()))).get(10, TimeUnit.SECONDS);
      assertThat(ranOn.get()).as("a task given on the event loop").isSameAs(loopThread);
      assertThat(shortcut.inlineRuns()).isEqualTo(1);

      CompletableFuture<String> fromHere = CompletableFuture.supplyAsync(() -> Thread.currentThread().getName(), shortcut);
      assertThat(fromHere.get(10, TimeUnit.SECONDS)).as("a task given on another thread").isEqualTo("server-pool");
      assertThat(shortcut.inlineRuns()).isEqualTo(1);
      assertThat(pooledThreadName(pool)).isEqualTo("server-pool");
    } finally {
      loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
      pool.shutdownNow();
    }
  }

  @Test
  void onceShutDownItRefusesTasksFromAnEventLoopAsThePoolDoes() throws Exception {
    ExecutorService pool = Executors.newSingleThreadExecutor();
    EventLoop loop = new DefaultEventLoop();
    try {
      ServerExecutorShortcut shortcut = ServerExecutorShortcut.wrap(pool);
      shortcut.shutdown();
      assertThat(shortcut.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
      assertThat(pool.isShutdown()).isTrue();
      AtomicInteger ran = new AtomicInteger();
      CompletableFuture<Throwable> refused = new CompletableFuture<>();
      loop.execute(() -> {
        try {
          shortcut.execute(ran::incrementAndGet);
          refused.complete(null);
        } catch (Throwable t) {
          refused.complete(t);
        }
      });
      assertThat(refused.get(10, TimeUnit.SECONDS)).isInstanceOf(RejectedExecutionException.class);
      assertThat(ran.get()).isZero();
      assertThatThrownBy(() -> shortcut.execute(ran::incrementAndGet)).isInstanceOf(RejectedExecutionException.class);
    } finally {
      loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
      pool.shutdownNow();
    }
  }

  /**
   * Ratis chains a follower's appends with {@code thenComposeAsync} and no executor: on a step
   * future, each such step, and each of the futures made from it, goes through the given executor
   * (the JVM's common pool otherwise), in order.
   */
  @Test
  void stepFuturesRunTheirDefaultAsyncStepsThroughTheGivenExecutor() throws Exception {
    AtomicInteger handed = new AtomicInteger();
    ExecutorService pool = Executors.newSingleThreadExecutor(r -> new Thread(r, "steps"));
    try {
      ServerExecutorShortcut.StepFuture<Void> head = new ServerExecutorShortcut.StepFuture<>(task -> {
        handed.incrementAndGet();
        pool.execute(task);
      });
      StringBuffer order = new StringBuffer();
      CompletableFuture<Void> chain = head;
      for (int i = 0; i < 5; i++) {
        int n = i;
        chain = chain.thenComposeAsync(v -> {
          order.append(n).append(Thread.currentThread().getName().equals("steps") ? "" : "!");
          return CompletableFuture.completedFuture(null);
        });
        assertThat(chain).isInstanceOf(ServerExecutorShortcut.StepFuture.class);
      }
      head.complete(null);
      chain.get(10, TimeUnit.SECONDS);
      assertThat(order.toString()).isEqualTo("01234");
      assertThat(handed.get()).isEqualTo(5);
      CompletableFuture<String> derived = chain.whenComplete((v, t) -> { }).thenApplyAsync(v -> Thread.currentThread().getName());
      assertThat(derived.get(10, TimeUnit.SECONDS)).isEqualTo("steps");
    } finally {
      pool.shutdownNow();
    }
  }
}
