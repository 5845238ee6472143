package io.capstan.kvstore.mvcc;

import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KeyValue;

/**
 * One event of a revision: the event as watchers without {@code prev_kv} see it, and the value the
 * key had before it (null if it did not exist), from which the {@code prev_kv} form is made on
 * demand and then kept.
 */
public final class Change {
  private final Event event;
  private final KeyValue prev;
  private volatile Event withPrev;

  Change(Event event, KeyValue prev) {
    this.event = event;
    this.prev = prev;
  }

  static Change put(KeyValue kv, KeyValue prev) {
    return new Change(Event.newBuilder().setType(Event.EventType.PUT).setKv(kv).build(), prev);
  }

  static Change delete(KeyValue tombstone, KeyValue prev) {
    return new Change(Event.newBuilder().setType(Event.EventType.DELETE).setKv(tombstone).build(), prev);
  }

  public Event event(boolean includePrevKv) {
    if (!includePrevKv || prev == null) {
      return event;
    }
    Event e = withPrev;
    if (e == null) {
      e = event.toBuilder().setPrevKv(prev).build();
      withPrev = e;
    }
    return e;
  }

  public KeyValue kv() {
    return event.getKv();
  }

  public boolean isDelete() {
    return event.getType() == Event.EventType.DELETE;
  }

  public KeyValue prev() {
    return prev;
  }
}
