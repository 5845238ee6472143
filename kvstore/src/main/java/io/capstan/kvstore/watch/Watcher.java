package io.capstan.kvstore.watch;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.mvcc.Change;
import io.capstan.kvstore.mvcc.MvccStore;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.WatchCreateRequest;
import java.util.ArrayList;
import java.util.List;

/**
 * One watch: a key range, filters, and the next revision it is owed. Deliveries are deduplicated
 * by revision, which is what lets the hub hand a watcher over from history replay to live
 * publication without a gap or a repeat.
 */
final class Watcher {
  final long id;
  final ByteString key;
  final ByteString rangeEnd;
  final boolean prevKv;
  final boolean noPut;
  final boolean noDelete;
  final boolean progressNotify;
  final WatchStream stream;
  /** The next revision this watcher must see; everything below it was delivered or skipped. */
  private long nextRevision;
  /** True once this watcher receives live publications (it has caught up with history). */
  volatile boolean live;
  /** True if something was sent since the last progress tick. */
  volatile boolean sentSinceTick;
  volatile boolean cancelled;

  Watcher(long id, WatchCreateRequest r, WatchStream stream) {
    this.id = id;
    this.key = r.getKey();
    this.rangeEnd = r.getRangeEnd();
    this.prevKv = r.getPrevKv();
    boolean noPut = false;
    boolean noDelete = false;
    for (WatchCreateRequest.FilterType f : r.getFiltersList()) {
      noPut |= f == WatchCreateRequest.FilterType.NOPUT;
      noDelete |= f == WatchCreateRequest.FilterType.NODELETE;
    }
    this.noPut = noPut;
    this.noDelete = noDelete;
    this.progressNotify = r.getProgressNotify();
    this.stream = stream;
  }

  synchronized void startAt(long revision) {
    nextRevision = revision;
  }

  synchronized long nextRevision() {
    return nextRevision;
  }

  boolean matches(ByteString k) {
    return MvccStore.inRange(k, key, rangeEnd);
  }

  /** Sends this revision's matching events, unless the revision was already handled. */
  synchronized void deliver(MvccStore.Committed committed) {
    if (cancelled || committed.revision() < nextRevision) {
      return;
    }
    nextRevision = committed.revision() + 1;
    List<Event> events = null;
    Change[] changes = committed.changes();
    for (int i = 0; i < changes.length; i++) {
      Change c = changes[i];
      if ((c.isDelete() ? noDelete : noPut) || !matches(c.kv().getKey())) {
        continue;
      }
      if (events == null) {
        events = new ArrayList<>(2);
      }
      events.add(committed.event(i, prevKv));
    }
    if (events != null) {
      sentSinceTick = true;
      stream.sendEvents(id, committed.revision(), events);
    }
  }
}
