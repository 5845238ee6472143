package io.capstan.kvstore.watch;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.mvcc.Change;
import io.capstan.kvstore.mvcc.KvException;
import io.capstan.kvstore.mvcc.MvccStore;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * Fans committed revisions out to watchers (etcd's watchable store). A new watcher first catches
 * up from the store's history in chunks without blocking writers, then, under the store's read
 * lock so that no revision commits meanwhile, replays the last revisions and joins live delivery.
 * Publication happens on the apply thread, in revision order, one revision at a time: a watcher
 * gets each revision's events in one response (atomic), never twice (unique), and none skipped
 * (reliable).
 */
public final class WatchHub implements Consumer<MvccStore.Committed> {
  private static final int REPLAY_CHUNK = 512;

  private final MvccStore store;
  private final Map<ByteString, Set<Watcher>> byKey = new HashMap<>();
  private final Set<Watcher> ranged = new HashSet<>();
  private final AtomicInteger count = new AtomicInteger();
  /** The newest revision every live watcher has been handed (guarded by this). */
  private long publishedRevision;

  public WatchHub(MvccStore store) {
    this.store = store;
    this.publishedRevision = store.currentRevision();
    store.onCommit(this);
    store.onReset(this::afterReset);
  }

  /**
   * The store's state was replaced by a snapshot (a lagging member installed one from the
   * leader): revisions jumped without being published, so every live watcher catches up from
   * the new history, or is cancelled as compacted if that history no longer reaches back to it.
   */
  private synchronized void afterReset() {
    Set<Watcher> all = new HashSet<>(ranged);
    byKey.values().forEach(all::addAll);
    for (Watcher w : all) {
      try {
        store.replay(w.nextRevision(), Integer.MAX_VALUE, w::deliver);
      } catch (KvException compacted) {
        unregister(w);
        w.stream.cancelCompacted(w.id, store.compactRevision());
      }
    }
    publishedRevision = store.currentRevision();
  }

  long compactRevision() {
    return store.compactRevision();
  }

  public int watcherCount() {
    return count.get();
  }

  /** Called on the apply thread after each committed revision. */
  @Override
  public synchronized void accept(MvccStore.Committed committed) {
    // No set of targets is built: a watcher is in one key's set or in the ranged set, a revision
    // changes each key at most once, and a watcher takes a revision only once anyway.
    for (Change c : committed.changes()) {
      Set<Watcher> exact = byKey.get(c.kv().getKey());
      if (exact != null) {
        for (Watcher w : exact) {
          w.deliver(committed);
        }
      }
    }
    for (Watcher w : ranged) {
      w.deliver(committed);
    }
    publishedRevision = committed.revision();
  }

  /**
   * Starts a watcher at {@code startRevision} (0: from the next revision). Replays history first.
   *
   * @throws KvException compacted if the start revision (or the history reached while catching
   *     up) was compacted; the watcher is then not registered
   */
  void start(Watcher w, long startRevision) {
    long next = startRevision > 0 ? startRevision : store.currentRevision() + 1;
    w.startAt(next);
    // Catch up outside the lock, chunk by chunk, while history is long.
    while (w.nextRevision() + REPLAY_CHUNK <= store.currentRevision()) {
      store.replay(w.nextRevision(), REPLAY_CHUNK, w::deliver);
    }
    // Final step: no revision can commit while we replay the rest and register.
    store.withReadLock(current -> {
      if (w.nextRevision() <= current) {
        store.replay(w.nextRevision(), Integer.MAX_VALUE, w::deliver);
      }
      register(w);
      return null;
    });
  }

  private synchronized void register(Watcher w) {
    if (w.rangeEnd.isEmpty()) {
      byKey.computeIfAbsent(w.key, k -> new HashSet<>()).add(w);
    } else {
      ranged.add(w);
    }
    w.live = true;
    count.incrementAndGet();
  }

  synchronized void unregister(Watcher w) {
    w.cancelled = true;
    boolean removed;
    if (w.rangeEnd.isEmpty()) {
      Set<Watcher> set = byKey.get(w.key);
      removed = set != null && set.remove(w);
      if (set != null && set.isEmpty()) {
        byKey.remove(w.key);
      }
    } else {
      removed = ranged.remove(w);
    }
    if (removed) {
      count.decrementAndGet();
    }
  }

  /**
   * Runs {@code action} with the newest revision all live watchers were handed, while no
   * publication can run: a progress notification made inside is never overtaken by an older event.
   */
  synchronized void atPublishedRevision(java.util.function.LongConsumer action) {
    action.accept(Math.max(publishedRevision, store.compactRevision()));
  }

  /** Sends a progress notification to every live watcher that asked for them and had no events. */
  public synchronized void progressTick() {
    Set<Watcher> all = new HashSet<>(ranged);
    byKey.values().forEach(all::addAll);
    for (Watcher w : all) {
      if (w.progressNotify && w.live && !w.sentSinceTick) {
        w.stream.sendProgress(w.id, publishedRevision);
      }
      w.sentSinceTick = false;
    }
  }
}
