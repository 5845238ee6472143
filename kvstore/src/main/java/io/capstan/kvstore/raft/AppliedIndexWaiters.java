package io.capstan.kvstore.raft;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * Futures that complete once this member has applied a given Raft index: a serializable read
 * waits until the member has applied the writes it acknowledged ({@link RaftNode#localReadBarrier}).
 */
final class AppliedIndexWaiters {
  private final NavigableMap<Long, List<CompletableFuture<Void>>> waiting = new TreeMap<>();
  private final Executor completer;
  private volatile long applied;

  /** @param completer runs what waited (not the apply thread, which calls {@link #advance}) */
  AppliedIndexWaiters(Executor completer) {
    this.completer = completer;
  }

  CompletableFuture<Void> await(long index) {
    if (index <= applied) {
      return CompletableFuture.completedFuture(null);
    }
    CompletableFuture<Void> f = new CompletableFuture<>();
    synchronized (this) {
      if (index <= applied) {
        return CompletableFuture.completedFuture(null);
      }
      waiting.computeIfAbsent(index, i -> new ArrayList<>(2)).add(f);
    }
    return f;
  }

  /** This member has applied up to {@code index}. */
  void advance(long index) {
    if (index <= applied) {
      return;
    }
    List<CompletableFuture<Void>> ready;
    synchronized (this) {
      if (index <= applied) {
        return;
      }
      applied = index;
      if (waiting.isEmpty() || waiting.firstKey() > index) {
        return;
      }
      Map<Long, List<CompletableFuture<Void>>> head = waiting.headMap(index, true);
      ready = new ArrayList<>();
      head.values().forEach(ready::addAll);
      head.clear();
    }
    try {
      completer.execute(() -> ready.forEach(f -> f.complete(null)));
    } catch (java.util.concurrent.RejectedExecutionException stopping) {
      ready.forEach(f -> f.complete(null));
    }
  }
}
