package io.capstan.kvstore.raft;

import io.capstan.kvstore.mvcc.RequestApplier;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;

/**
 * When each lease expires: local, never replicated. Every member keeps it up to date from the
 * applied grants and revocations, but only the leader's clock counts: the leader renews leases on
 * keep-alive, and proposes the revocation of those that expired. On becoming leader a member
 * pushes every expiry out by a full TTL (etcd's lessor Promote), so that clients are not punished
 * for the election.
 */
public final class LeaseClock implements RequestApplier.LeaseObserver {
  private record Entry(long ttlSeconds, long expiresAtNanos) {}

  private final Map<Long, Entry> leases = new ConcurrentHashMap<>();
  private final Map<Long, Long> revokeProposedAt = new ConcurrentHashMap<>();
  private final LongSupplier nanoTime;

  public LeaseClock(LongSupplier nanoTime) {
    this.nanoTime = nanoTime;
  }

  @Override
  public void granted(long id, long ttlSeconds) {
    leases.put(id, new Entry(ttlSeconds, nanoTime.getAsLong() + ttlSeconds * 1_000_000_000L));
  }

  @Override
  public void revoked(long id) {
    leases.remove(id);
    revokeProposedAt.remove(id);
  }

  /** Renews a lease for a full TTL; returns the TTL, or 0 if the lease is unknown (etcd's reply). */
  public long renew(long id) {
    Entry e = leases.computeIfPresent(id, (k, old) ->
        new Entry(old.ttlSeconds, nanoTime.getAsLong() + old.ttlSeconds * 1_000_000_000L));
    return e == null ? 0 : e.ttlSeconds;
  }

  /** Seconds left before the lease expires (rounded up), or -1 if unknown. */
  public long remainingSeconds(long id) {
    Entry e = leases.get(id);
    if (e == null) {
      return -1;
    }
    long left = e.expiresAtNanos - nanoTime.getAsLong();
    return left <= 0 ? 0 : (left + 999_999_999L) / 1_000_000_000L;
  }

  /** Pushes every lease's expiry a full TTL from now. */
  public void refreshAll() {
    long now = nanoTime.getAsLong();
    leases.replaceAll((id, e) -> new Entry(e.ttlSeconds, now + e.ttlSeconds * 1_000_000_000L));
    revokeProposedAt.clear();
  }

  /** Forgets everything (the state machine is being reloaded from a snapshot). */
  public void clear() {
    leases.clear();
    revokeProposedAt.clear();
  }

  /**
   * Leases past their expiry whose revocation was not proposed in the last {@code retryNanos}
   * (a proposal may be lost with a leader change); marks them proposed.
   */
  public List<Long> takeExpired(long retryNanos) {
    long now = nanoTime.getAsLong();
    List<Long> out = new ArrayList<>();
    for (Map.Entry<Long, Entry> e : leases.entrySet()) {
      if (e.getValue().expiresAtNanos <= now) {
        Long proposed = revokeProposedAt.get(e.getKey());
        if (proposed == null || now - proposed > retryNanos) {
          revokeProposedAt.put(e.getKey(), now);
          out.add(e.getKey());
        }
      }
    }
    out.sort(null);
    return out;
  }
}
