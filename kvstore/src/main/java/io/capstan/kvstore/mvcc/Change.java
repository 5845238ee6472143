package io.capstan.kvstore.mvcc;

import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KeyValue;

/**
 * One event of a revision: the key's new version (a tombstone for a deletion, see {@link
 * KeyHistory}) and the version before it (null if the key did not exist). The etcd {@link Event}
 * is made when a watcher or a snapshot asks for it rather than kept: history holds many revisions
 * that nobody watches, and an Event per revision would cost memory for each of them.
 */
public final class Change {
  private final KeyValue kv;
  private final KeyValue prev;

  private Change(KeyValue kv, KeyValue prev) {
    this.kv = kv;
    this.prev = prev;
  }

  static Change put(KeyValue kv, KeyValue prev) {
    return new Change(kv, prev);
  }

  static Change delete(KeyValue tombstone, KeyValue prev) {
    return new Change(tombstone, prev);
  }

  public Event event(boolean includePrevKv) {
    Event.Builder e = Event.newBuilder().setType(isDelete() ? Event.EventType.DELETE : Event.EventType.PUT).setKv(kv);
    if (includePrevKv && prev != null) {
      e.setPrevKv(prev);
    }
    return e.build();
  }

  public KeyValue kv() {
    return kv;
  }

  public boolean isDelete() {
    return KeyHistory.isTombstone(kv);
  }

  public KeyValue prev() {
    return prev;
  }
}
