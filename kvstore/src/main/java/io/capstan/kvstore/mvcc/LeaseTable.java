package io.capstan.kvstore.mvcc;

import com.google.protobuf.ByteString;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableSet;
import java.util.TreeSet;

/**
 * The replicated part of the leases: which exist, their granted TTL and the keys attached to them.
 * When a lease expires is not replicated state; only the leader tracks it. Keys are kept sorted so
 * that revoking a lease deletes them in the same order on every member. Not thread-safe: guarded
 * by {@link MvccStore}'s lock.
 */
final class LeaseTable {
  /** One lease: its ID, its granted TTL in seconds, its keys. */
  static final class Lease {
    final long id;
    final long ttl;
    final NavigableSet<ByteString> keys = new TreeSet<>(MvccStore.KEY_ORDER);

    Lease(long id, long ttl) {
      this.id = id;
      this.ttl = ttl;
    }
  }

  private final Map<Long, Lease> leases = new HashMap<>();

  boolean exists(long id) {
    return leases.containsKey(id);
  }

  Lease get(long id) {
    return leases.get(id);
  }

  void grant(long id, long ttl) {
    leases.put(id, new Lease(id, ttl));
  }

  Lease remove(long id) {
    return leases.remove(id);
  }

  void attach(long id, ByteString key) {
    Lease lease = leases.get(id);
    if (lease != null) {
      lease.keys.add(key);
    }
  }

  void detach(long id, ByteString key) {
    Lease lease = leases.get(id);
    if (lease != null) {
      lease.keys.remove(key);
    }
  }

  Collection<Lease> all() {
    return leases.values();
  }

  List<Long> ids() {
    List<Long> ids = new ArrayList<>(leases.keySet());
    ids.sort(null);
    return ids;
  }

  void clear() {
    leases.clear();
  }
}
