package io.capstan.kvstore.mvcc;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.concurrent.Executor;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Consumer;

/**
 * The multi-version key-value store, with etcd's revision rules: a new store is at revision 1, and
 * every write transaction that changes something takes the next revision, shared by all its
 * events. Keeps every version and every revision's events above the compact revision, so reads at
 * past revisions and watch replays work until {@link #compact} discards them.
 *
 * <p>Deterministic: given the same sequence of write transactions every member ends in the same
 * state. Writes come from one thread (the Raft apply thread); reads from any thread. Published
 * revisions go to the {@link #onCommit listener} in revision order, after the write lock is
 * released.
 */
public final class MvccStore {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(MvccStore.class);
  /**
   * etcd's key order: unsigned bytes, lexicographic. Protobuf's own comparator walks two
   * iterators and boxes every byte; this one indexes the bytes (with protobuf's, the index lookups
   * of puts were a quarter of the apply thread's CPU samples under C1, see bin/capstan).
   */
  public static final Comparator<ByteString> KEY_ORDER = MvccStore::compareKeys;
  private static final ByteString ZERO = ByteString.copyFrom(new byte[] {0});

  /**
   * One committed revision, as delivered to the listener. Its etcd Events are built once and
   * shared by every watcher it is delivered to (a thousand watchers of a key cost one Event).
   */
  public static final class Committed {
    private final long revision;
    private final Change[] changes;
    private Event[] events;
    private Event[] eventsWithPrev;

    public Committed(long revision, Change[] changes) {
      this.revision = revision;
      this.changes = changes;
    }

    public long revision() {
      return revision;
    }

    public Change[] changes() {
      return changes;
    }

    /** The Event of change {@code i}, with its previous version if {@code prevKv}. */
    public synchronized Event event(int i, boolean prevKv) {
      Event[] cache = prevKv ? eventsWithPrev : events;
      if (cache == null) {
        cache = new Event[changes.length];
        if (prevKv) {
          eventsWithPrev = cache;
        } else {
          events = cache;
        }
      }
      if (cache[i] == null) {
        cache[i] = changes[i].event(prevKv);
      }
      return cache[i];
    }
  }

  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  /** Every key with history, in key order (ranges). */
  private final TreeMap<ByteString, KeyHistory> index = new TreeMap<>(KEY_ORDER);
  /**
   * The same histories by key, for the point lookups of every put, txn compare and single-key get:
   * a hash probe (ByteString caches its hash) instead of ~log2(keys) byte-wise comparisons. Costs
   * ~50 bytes a key. Always changed together with {@link #index}.
   */
  private final HashMap<ByteString, KeyHistory> byKey = new HashMap<>();
  private RevisionLog log = new RevisionLog(2);
  final LeaseTable leases = new LeaseTable();
  private volatile long currentRevision = 1;
  private volatile long compactRevision = 0;
  private volatile long approximateBytes;
  private volatile Consumer<Committed> listener = c -> {};
  private volatile Runnable resetListener = () -> {};
  // background trimming after compaction (trimInBackground); all under the write lock
  private Executor trimmer;
  private int trimBatchKeys;
  private boolean trimming;
  /** Every history is trimmed to at least this revision. */
  private long trimmedTo;
  /** The lowest target a step of the pass under way trimmed to. */
  private long trimPassLowest;
  /** Compact revisions of the {@link Image}s not yet written, counted: no trimming above the lowest. */
  private final TreeMap<Long, Integer> pins = new TreeMap<>();
  /** Changes when the whole state is replaced ({@link #resetLocked}): an image being written then fails. */
  private long generation;
  private ByteString trimCursor;
  private long trimStarted;
  private long trimReleased;

  /** Sets who hears of each committed revision (the watch hub). */
  public void onCommit(Consumer<Committed> listener) {
    this.listener = listener;
  }

  /** Sets who hears that the whole state was replaced (a snapshot was loaded). */
  public void onReset(Runnable listener) {
    this.resetListener = listener;
  }

  void notifyReset() {
    resetListener.run();
  }

  public long currentRevision() {
    return currentRevision;
  }

  public long compactRevision() {
    return compactRevision;
  }

  /** Rough heap footprint of the data held: keys and values of every version, plus per-version overhead. */
  public long approximateBytes() {
    return approximateBytes;
  }

  public int keyCount() {
    lock.readLock().lock();
    try {
      return index.size();
    } finally {
      lock.readLock().unlock();
    }
  }

  /** Heap bytes one version costs beyond its key and value (see {@link #sizeOf}). */
  public static final long VERSION_OVERHEAD_BYTES = 200;

  /**
   * What one version costs in memory: its key and value bytes plus the objects around them (the
   * KeyValue, the value's ByteString, its change record and history slot, about 200 bytes measured
   * with a heap histogram). The space quota counts this.
   */
  static long sizeOf(KeyValue kv) {
    return kv.getKey().size() + kv.getValue().size() + VERSION_OVERHEAD_BYTES;
  }

  ReentrantReadWriteLock lock() {
    return lock;
  }

  /** A lease as replicated: its granted TTL and attached keys. */
  public record LeaseInfo(long id, long ttl, List<ByteString> keys) {}

  public java.util.Optional<LeaseInfo> lease(long id) {
    lock.readLock().lock();
    try {
      LeaseTable.Lease l = leases.get(id);
      return l == null ? java.util.Optional.empty()
          : java.util.Optional.of(new LeaseInfo(l.id, l.ttl, new ArrayList<>(l.keys)));
    } finally {
      lock.readLock().unlock();
    }
  }

  public List<Long> leaseIds() {
    lock.readLock().lock();
    try {
      return leases.ids();
    } finally {
      lock.readLock().unlock();
    }
  }

  // ---------------------------------------------------------------- reads

  /**
   * Serves a Range with etcd's semantics ({@code count} is the number of keys in range at the
   * revision, whatever the limit; {@code more} is set when the limit cut the result).
   *
   * @throws KvException compacted / future revision, or key not provided
   */
  public RangeResponse.Builder range(RangeRequest r) {
    lock.readLock().lock();
    try {
      return rangeLocked(r, currentRevision);
    } finally {
      lock.readLock().unlock();
    }
  }

  /** Range under a lock the caller holds, at {@code current} as the newest visible revision. */
  RangeResponse.Builder rangeLocked(RangeRequest r, long current) {
    if (r.getKey().isEmpty()) {
      throw KvException.keyNotProvided();
    }
    long rev = r.getRevision() <= 0 ? current : r.getRevision();
    if (rev > current) {
      throw KvException.futureRevision();
    }
    if (rev < compactRevision) {
      throw KvException.compacted();
    }
    boolean fetchAll = r.getSortOrder() != RangeRequest.SortOrder.NONE
        || r.getMinModRevision() != 0 || r.getMaxModRevision() != 0
        || r.getMinCreateRevision() != 0 || r.getMaxCreateRevision() != 0;
    long fetchLimit = (r.getLimit() > 0 && !fetchAll) ? r.getLimit() + 1 : Long.MAX_VALUE;

    List<KeyValue> kvs = new ArrayList<>();
    long count = 0;
    for (KeyHistory h : span(r.getKey(), r.getRangeEnd()).values()) {
      KeyValue kv = h.liveAt(rev);
      if (kv == null) {
        continue;
      }
      count++;
      if (!r.getCountOnly() && kvs.size() < fetchLimit) {
        kvs.add(kv);
      }
    }
    kvs.removeIf(kv -> !passesFilters(r, kv));
    sort(r, kvs);
    RangeResponse.Builder out = RangeResponse.newBuilder().setCount(count);
    if (r.getLimit() > 0 && kvs.size() > r.getLimit()) {
      kvs = kvs.subList(0, (int) r.getLimit());
      out.setMore(true);
    }
    for (KeyValue kv : kvs) {
      out.addKvs(r.getKeysOnly() ? kv.toBuilder().clearValue().build() : kv);
    }
    return out;
  }

  private static boolean passesFilters(RangeRequest r, KeyValue kv) {
    return (r.getMinModRevision() == 0 || kv.getModRevision() >= r.getMinModRevision())
        && (r.getMaxModRevision() == 0 || kv.getModRevision() <= r.getMaxModRevision())
        && (r.getMinCreateRevision() == 0 || kv.getCreateRevision() >= r.getMinCreateRevision())
        && (r.getMaxCreateRevision() == 0 || kv.getCreateRevision() <= r.getMaxCreateRevision());
  }

  private static void sort(RangeRequest r, List<KeyValue> kvs) {
    RangeRequest.SortOrder order = r.getSortOrder();
    if (order == RangeRequest.SortOrder.NONE && r.getSortTarget() != RangeRequest.SortTarget.KEY) {
      order = RangeRequest.SortOrder.ASCEND; // etcd: a target without an order sorts ascending
    }
    if (order == RangeRequest.SortOrder.NONE
        || (order == RangeRequest.SortOrder.ASCEND && r.getSortTarget() == RangeRequest.SortTarget.KEY)) {
      return; // already in ascending key order
    }
    Comparator<KeyValue> c = switch (r.getSortTarget()) {
      case VERSION -> Comparator.comparingLong(KeyValue::getVersion);
      case CREATE -> Comparator.comparingLong(KeyValue::getCreateRevision);
      case MOD -> Comparator.comparingLong(KeyValue::getModRevision);
      case VALUE -> Comparator.comparing(KeyValue::getValue, KEY_ORDER);
      default -> Comparator.comparing(KeyValue::getKey, KEY_ORDER);
    };
    kvs.sort(order == RangeRequest.SortOrder.DESCEND ? c.reversed() : c);
  }

  /** The histories of the keys in etcd's range [key, rangeEnd). */
  NavigableMap<ByteString, KeyHistory> span(ByteString key, ByteString rangeEnd) {
    if (rangeEnd.isEmpty()) {
      KeyHistory h = byKey.get(key);
      TreeMap<ByteString, KeyHistory> one = new TreeMap<>(KEY_ORDER);
      if (h != null) {
        one.put(key, h);
      }
      return one;
    }
    if (rangeEnd.equals(ZERO)) {
      return index.tailMap(key, true);
    }
    if (KEY_ORDER.compare(rangeEnd, key) <= 0) {
      return new TreeMap<>(KEY_ORDER);
    }
    return index.subMap(key, true, rangeEnd, false);
  }

  static int compareKeys(ByteString a, ByteString b) {
    int n = Math.min(a.size(), b.size());
    for (int i = 0; i < n; i++) {
      int d = (a.byteAt(i) & 0xff) - (b.byteAt(i) & 0xff);
      if (d != 0) {
        return d;
      }
    }
    return a.size() - b.size();
  }

  /** The history of {@code key}, created (in both indexes) if it has none. */
  private KeyHistory historyFor(ByteString key) {
    KeyHistory h = byKey.get(key);
    if (h == null) {
      h = new KeyHistory();
      byKey.put(key, h);
      index.put(key, h);
    }
    return h;
  }

  /** Drops the histories that compaction emptied, from both indexes. */
  private long compactHistories(long revision) {
    return compactHistories(index, revision, Integer.MAX_VALUE);
  }

  /**
   * Trims the histories of {@code keys} (a view of {@link #index}) to {@code revision}, at most
   * {@code max} of them, dropping those it empties from both indexes; leaves {@link #trimCursor}
   * at the last key visited. Returns the bytes released.
   */
  private long compactHistories(NavigableMap<ByteString, KeyHistory> keys, long revision, int max) {
    long released = 0;
    var it = keys.entrySet().iterator();
    for (int n = 0; n < max && it.hasNext(); n++) {
      Map.Entry<ByteString, KeyHistory> e = it.next();
      ByteString key = e.getKey(); // before the removal: TreeMap's may move the successor's key into this entry
      released += e.getValue().compact(revision);
      if (e.getValue().size() == 0) {
        byKey.remove(key);
        it.remove();
      }
      trimCursor = key;
    }
    if (!it.hasNext()) {
      trimCursor = null;
    }
    return released;
  }

  /** True if {@code key} falls in etcd's range [start, end). */
  public static boolean inRange(ByteString key, ByteString start, ByteString end) {
    if (end.isEmpty()) {
      return key.equals(start);
    }
    if (KEY_ORDER.compare(key, start) < 0) {
      return false;
    }
    return end.equals(ZERO) || KEY_ORDER.compare(key, end) < 0;
  }

  // ---------------------------------------------------------------- history (watch replay)

  /**
   * Calls {@code visitor} with the committed revisions from {@code fromRevision} to at most {@code
   * maxRevisions} of them, under the read lock, and returns the revision after the last one
   * visited.
   *
   * @throws KvException compacted when {@code fromRevision} is below the compact revision
   */
  public long replay(long fromRevision, int maxRevisions, Consumer<Committed> visitor) {
    lock.readLock().lock();
    try {
      return replayLocked(fromRevision, maxRevisions, visitor);
    } finally {
      lock.readLock().unlock();
    }
  }

  long replayLocked(long fromRevision, int maxRevisions, Consumer<Committed> visitor) {
    if (fromRevision < compactRevision) {
      throw KvException.compacted();
    }
    long rev = Math.max(fromRevision, log.first());
    long end = Math.min(currentRevision, rev + maxRevisions - 1);
    for (; rev <= end; rev++) {
      visitor.accept(new Committed(rev, log.get(rev)));
    }
    return rev;
  }

  /**
   * Runs {@code action} holding the read lock, so no revision commits meanwhile; the watch hub
   * uses it to switch a watcher from replay to live delivery without a gap or a repeat.
   */
  public <T> T withReadLock(java.util.function.LongFunction<T> action) {
    lock.readLock().lock();
    try {
      return action.apply(currentRevision);
    } finally {
      lock.readLock().unlock();
    }
  }

  // ---------------------------------------------------------------- writes

  /** A write transaction: every change it makes shares one revision. */
  public final class WriteTxn {
    final long revision = currentRevision + 1;
    private final List<Change> changes = new ArrayList<>();

    public long revision() {
      return revision;
    }

    public boolean changed() {
      return !changes.isEmpty();
    }

    /** The newest visible revision inside this transaction (its own writes included). */
    long readRevision() {
      return changed() ? revision : currentRevision;
    }

    KeyValue live(ByteString key) {
      KeyHistory h = byKey.get(key);
      return h == null ? null : h.live();
    }

    /** Writes {@code key}; returns the value it replaced (null if none). */
    KeyValue put(ByteString key, ByteString value, long lease) {
      KeyHistory h = historyFor(key);
      KeyValue prev = h.live();
      KeyValue kv = KeyValue.newBuilder()
          .setKey(key)
          .setValue(value)
          .setCreateRevision(prev == null ? revision : prev.getCreateRevision())
          .setModRevision(revision)
          .setVersion(prev == null ? 1 : prev.getVersion() + 1)
          .setLease(lease)
          .build();
      h.add(kv);
      if (prev != null && prev.getLease() != 0 && prev.getLease() != lease) {
        leases.detach(prev.getLease(), key);
      }
      if (lease != 0) {
        leases.attach(lease, key);
      }
      approximateBytes += sizeOf(kv);
      changes.add(Change.put(kv, prev));
      return prev;
    }

    /** Deletes the live keys in [key, rangeEnd); returns what they held, in key order. */
    List<KeyValue> deleteRange(ByteString key, ByteString rangeEnd) {
      List<KeyValue> deleted = new ArrayList<>();
      for (Map.Entry<ByteString, KeyHistory> e : span(key, rangeEnd).entrySet()) {
        KeyValue prev = e.getValue().live();
        if (prev != null) {
          deleted.add(prev);
        }
      }
      for (KeyValue prev : deleted) {
        KeyValue tomb = KeyHistory.tombstone(prev, revision);
        byKey.get(prev.getKey()).add(tomb);
        if (prev.getLease() != 0) {
          leases.detach(prev.getLease(), prev.getKey());
        }
        approximateBytes += sizeOf(tomb);
        changes.add(Change.delete(tomb, prev));
      }
      return deleted;
    }

    RangeResponse.Builder range(RangeRequest r) {
      return rangeLocked(r, readRevision());
    }
  }

  /**
   * Runs {@code body} as one write transaction under the write lock; if it changed anything the
   * store moves to the next revision and the listener hears of it (after the lock is released).
   * If {@code body} throws, nothing it did may have been changed (callers validate first).
   */
  public <T> T write(java.util.function.Function<WriteTxn, T> body) {
    Committed committed = null;
    T result;
    lock.writeLock().lock();
    try {
      WriteTxn txn = new WriteTxn();
      result = body.apply(txn);
      if (txn.changed()) {
        Change[] changes = txn.changes.toArray(new Change[0]);
        log.append(txn.revision, changes);
        currentRevision = txn.revision;
        committed = new Committed(txn.revision, changes);
      }
    } finally {
      lock.writeLock().unlock();
    }
    if (committed != null) {
      listener.accept(committed);
    }
    return result;
  }

  /**
   * Discards history below {@code revision}: reads and watches from before it fail as compacted
   * from now on.
   *
   * @throws KvException compacted if at or below the current compact revision, future revision if
   *     above the current revision
   */
  public void compact(long revision) {
    lock.writeLock().lock();
    try {
      if (revision <= compactRevision) {
        throw KvException.compacted();
      }
      if (revision > currentRevision) {
        throw KvException.futureRevision();
      }
      compactLocked(revision);
    } finally {
      lock.writeLock().unlock();
    }
  }

  private void compactLocked(long revision) {
    compactRevision = revision;
    log.truncateBefore(revision);
    trimIfOwed();
  }

  /**
   * The revision the histories may be trimmed to now: the compact revision, or lower while an
   * {@link Image} that reads the histories later was taken at a lower one.
   */
  private long trimTarget() {
    return pins.isEmpty() ? compactRevision : Math.min(compactRevision, pins.firstKey());
  }

  /** Trims the histories to {@link #trimTarget} if they are not yet: at once, or in background steps. */
  private void trimIfOwed() {
    long target = trimTarget();
    if (target <= trimmedTo) {
      return;
    }
    if (trimmer == null) {
      approximateBytes -= compactHistories(target);
      trimmedTo = target;
    } else if (!trimming) {
      trimming = true;
      trimCursor = null;
      trimPassLowest = target;
      trimStarted = System.nanoTime();
      trimReleased = 0;
      scheduleTrim();
    } // else the pass under way goes on to the new target, and runs again for the keys before it
  }

  /**
   * Compaction trims the key histories on {@code executor}, {@value #TRIM_BATCH_KEYS} keys at a
   * time under the write lock, as etcd compacts in batches: what the compaction hides is hidden at
   * once (reads and watches below it fail, the revision log is cut), but the walk over every key
   * that frees the versions no longer reachable no longer holds up the apply thread (100,000 keys:
   * 91-160 ms at once; README). Until a pass ends, {@link #approximateBytes} and {@link #keyCount}
   * still count what it has not reached. Without it (unit tests) compaction trims at once.
   */
  public void trimInBackground(Executor executor) {
    trimInBackground(executor, TRIM_BATCH_KEYS);
  }

  /** As {@link #trimInBackground(Executor)}, {@code batchKeys} keys a step (tests: small steps). */
  void trimInBackground(Executor executor, int batchKeys) {
    lock.writeLock().lock();
    try {
      this.trimmer = executor;
      this.trimBatchKeys = batchKeys;
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** Keys trimmed per hold of the write lock: about a millisecond's work. */
  static final int TRIM_BATCH_KEYS = 1_000;

  private void scheduleTrim() {
    try {
      trimmer.execute(this::trimStep);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      trimming = false; // the member is stopping; untrimmed versions only cost memory
    }
  }

  private void trimStep() {
    lock.writeLock().lock();
    try {
      long target = trimTarget();
      trimPassLowest = Math.min(trimPassLowest, target);
      long released = compactHistories(trimCursor == null ? index : index.tailMap(trimCursor, false), target, trimBatchKeys);
      approximateBytes -= released;
      trimReleased += released;
      if (trimCursor == null) { // the pass reached the last key: every key is trimmed to its lowest target
        trimmedTo = Math.max(trimmedTo, trimPassLowest);
        if (trimTarget() > trimmedTo) {
          trimPassLowest = trimTarget(); // compacted again (or an image let go) meanwhile: once more
        } else {
          trimming = false;
          LOG.info("trimmed the key histories to revision {}: {} bytes released, {} keys left, {} ms",
              trimmedTo, trimReleased, index.size(), (System.nanoTime() - trimStarted) / 1_000_000);
          return;
        }
      }
    } finally {
      lock.writeLock().unlock();
    }
    scheduleTrim();
  }

  // ---------------------------------------------------------------- snapshot support

  /**
   * The replicated state at one revision, to be written later by another thread while the store
   * moves on. Taking one costs no walk over the keys: it copies the revision log's references (the
   * events of every revision still held, arrays never changed once written), the leases and the
   * counters. The base (the live values as of the revision before the log's first) is read from
   * the key histories later, while it is written ({@link #forEachBaseValue}), in steps under the
   * read lock: values written after the image have later revisions and do not show, and until
   * the image is {@link #close closed} the histories are not trimmed above its compact revision,
   * so what it reads stays there. Close it exactly once, written or not.
   */
  public final class Image implements AutoCloseable {
    final long revision;
    final long compactRevision;
    final long firstLogRevision;
    final Change[][] revisions;
    final long[] leaseIds;
    final long[] leaseTtls;
    private final long generationAtCapture;
    private final int keys;
    private boolean closed;

    private Image(long revision, long compactRevision, long firstLogRevision, Change[][] revisions,
        long[] leaseIds, long[] leaseTtls, long generationAtCapture, int keys) {
      this.revision = revision;
      this.compactRevision = compactRevision;
      this.firstLogRevision = firstLogRevision;
      this.revisions = revisions;
      this.leaseIds = leaseIds;
      this.leaseTtls = leaseTtls;
      this.generationAtCapture = generationAtCapture;
      this.keys = keys;
    }

    public long revision() {
      return revision;
    }

    /** Keys (with history) plus events in the log when taken: what writing it costs, roughly. */
    public long records() {
      long events = 0;
      for (Change[] changes : revisions) {
        events += changes.length;
      }
      return keys + events;
    }

    /**
     * Calls {@code visitor} with every base value in key order, {@code batch} keys per hold of
     * the read lock (the visitor runs outside it).
     *
     * @throws java.io.IOException if the whole state was replaced meanwhile (a snapshot loaded)
     */
    void forEachBaseValue(int batch, IoConsumer<KeyValue> visitor) throws java.io.IOException {
      long baseRev = firstLogRevision - 1;
      ByteString after = null;
      List<KeyValue> values = new ArrayList<>(batch);
      while (true) {
        values.clear();
        boolean more;
        lock.readLock().lock();
        try {
          if (generation != generationAtCapture) {
            throw new java.io.IOException("the store's state was replaced while a snapshot of it was being written");
          }
          NavigableMap<ByteString, KeyHistory> rest = after == null ? index : index.tailMap(after, false);
          var it = rest.entrySet().iterator();
          for (int n = 0; n < batch && it.hasNext(); n++) {
            Map.Entry<ByteString, KeyHistory> e = it.next();
            after = e.getKey();
            KeyValue kv = e.getValue().liveAt(baseRev);
            if (kv != null) {
              values.add(kv);
            }
          }
          more = it.hasNext();
        } finally {
          lock.readLock().unlock();
        }
        for (KeyValue kv : values) {
          visitor.accept(kv);
        }
        if (!more) {
          return;
        }
      }
    }

    /** Lets the histories be trimmed past this image's compact revision again. */
    @Override
    public void close() {
      lock.writeLock().lock();
      try {
        if (closed) {
          return;
        }
        closed = true;
        pins.computeIfPresent(compactRevision, (r, n) -> n == 1 ? null : n - 1);
        trimIfOwed();
      } finally {
        lock.writeLock().unlock();
      }
    }
  }

  /** A consumer that may throw IOException (writing an image). */
  @FunctionalInterface
  public interface IoConsumer<T> {
    void accept(T t) throws java.io.IOException;
  }

  /** The state as of now (see {@link Image}); O(revisions in the log), not O(keys). */
  public Image image() {
    lock.writeLock().lock(); // the pin must be in place before any trimming step runs
    try {
      Change[][] revisions = new Change[(int) (currentRevision - log.first() + 1)][];
      for (int i = 0; i < revisions.length; i++) {
        revisions[i] = log.get(log.first() + i);
      }
      List<Long> ids = leases.ids();
      long[] leaseIds = new long[ids.size()];
      long[] leaseTtls = new long[ids.size()];
      for (int i = 0; i < leaseIds.length; i++) {
        leaseIds[i] = ids.get(i);
        leaseTtls[i] = leases.get(leaseIds[i]).ttl;
      }
      pins.merge(compactRevision, 1, Integer::sum);
      return new Image(currentRevision, compactRevision, log.first(), revisions, leaseIds, leaseTtls, generation,
          index.size());
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** Replaces the whole state (snapshot load). The caller holds the write lock. */
  void resetLocked(long revision, long compactRev, List<KeyValue> base, List<List<KeyValue>> eventKvs, long firstLogRev) {
    generation++;
    index.clear();
    byKey.clear();
    approximateBytes = 0;
    RevisionLog fresh = new RevisionLog(firstLogRev);
    for (KeyValue kv : base) {
      historyFor(kv.getKey()).add(kv);
      approximateBytes += sizeOf(kv);
    }
    long rev = firstLogRev;
    for (List<KeyValue> kvs : eventKvs) {
      Change[] changes = new Change[kvs.size()];
      for (int i = 0; i < kvs.size(); i++) {
        KeyValue kv = kvs.get(i);
        KeyHistory h = historyFor(kv.getKey());
        KeyValue prev = h.live();
        h.add(kv);
        approximateBytes += sizeOf(kv);
        changes[i] = KeyHistory.isTombstone(kv) ? Change.delete(kv, prev) : Change.put(kv, prev);
      }
      fresh.append(rev++, changes);
    }
    log = fresh;
    currentRevision = revision;
    compactRevision = compactRev;
    if (compactRev > 0) {
      approximateBytes -= compactHistories(compactRev);
    }
    trimmedTo = compactRev;
    trimCursor = null; // a pass under way starts over on the new histories
  }

  /** Attaches every live key to its lease (after a snapshot load granted the leases). */
  void reattachLeasesLocked() {
    for (KeyHistory h : index.values()) {
      KeyValue kv = h.live();
      if (kv != null && kv.getLease() != 0) {
        leases.attach(kv.getLease(), kv.getKey());
      }
    }
  }
}
