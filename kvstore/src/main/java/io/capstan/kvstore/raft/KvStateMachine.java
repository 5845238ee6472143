package io.capstan.kvstore.raft;

import io.capstan.kvstore.mvcc.ClusterMembers;
import io.capstan.kvstore.mvcc.MvccStore;
import io.capstan.kvstore.mvcc.RequestApplier;
import io.capstan.kvstore.mvcc.StoreSnapshot;
import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.Query;
import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.LeaseKeepAliveResponse;
import io.etcd.jetcd.api.LeaseTimeToLiveResponse;
import io.etcd.jetcd.api.ResponseHeader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import org.apache.ratis.proto.RaftProtos;
import org.apache.ratis.protocol.ClientId;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftGroupId;
import org.apache.ratis.protocol.RaftGroupMemberId;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.protocol.SnapshotManagementRequest;
import org.apache.ratis.rpc.CallId;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.protocol.TermIndex;
import org.apache.ratis.server.storage.RaftStorage;
import org.apache.ratis.statemachine.SnapshotInfo;
import org.apache.ratis.statemachine.TransactionContext;
import org.apache.ratis.statemachine.impl.BaseStateMachine;
import org.apache.ratis.statemachine.impl.SimpleStateMachineStorage;
import org.apache.ratis.statemachine.impl.SingleFileSnapshotInfo;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.apache.ratis.util.LifeCycle;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Ratis state machine: applies {@link RaftCommand}s to the store in log order, takes and
 * loads snapshots of the whole state, and answers the leader-only queries (lease keep-alive and
 * time-to-live) and the linearizable read barrier.
 */
final class KvStateMachine extends BaseStateMachine {
  private static final Logger LOG = LoggerFactory.getLogger(KvStateMachine.class);

  private final SnapshotWriter snapshots;
  private final SimpleStateMachineStorage storage;
  private final MvccStore store;
  private final ClusterMembers members;
  private final LeaseClock leaseClock;
  private final RequestApplier applier;
  private final Path restoreFile;
  private final java.util.concurrent.atomic.AtomicLong snapshotsInstalled = new java.util.concurrent.atomic.AtomicLong();
  private volatile Leadership leadership = Leadership.NONE;
  private volatile Runnable afterApply = () -> {};
  private volatile Runnable afterLeaderChange = () -> {};

  KvStateMachine(MvccStore store, ClusterMembers members, LeaseClock leaseClock, Path restoreFile, long snapshotCount) {
    this.snapshots = new SnapshotWriter(snapshotCount);
    this.storage = snapshots.storage();
    this.snapshots.setOnFinished(this::requestSnapshot);
    this.store = store;
    this.members = members;
    this.leaseClock = leaseClock;
    this.applier = new RequestApplier(store, members, leaseClock);
    this.restoreFile = restoreFile;
  }

  /** How this member learns whether it leads: leader-only queries are answered only by a confirmed leader. */
  interface Leadership {
    /** Never leads (before the member is wired up). */
    Leadership NONE = new Leadership() {
      @Override
      public long leaderTerm() {
        return -1;
      }

      @Override
      public CompletableFuture<Void> confirm(long term) {
        return CompletableFuture.failedFuture(new NotLeaderForQueryException());
      }
    };

    /** The term this member leads in, or -1 when it does not lead. */
    long leaderTerm();

    /**
     * Completes once a majority, asked after the call, confirmed that this member still leads in
     * {@code term}; fails otherwise ({@code RaftNode#confirmLeadership}).
     */
    CompletableFuture<Void> confirm(long term);
  }

  void setLeadership(Leadership leadership) {
    this.leadership = leadership;
  }

  /** Runs after each change of leader Ratis reports; must not block. */
  void setAfterLeaderChange(Runnable afterLeaderChange) {
    this.afterLeaderChange = afterLeaderChange;
  }

  /** Runs after each applied entry and each installed snapshot; must not block ({@link CommitBroadcast}). */
  void setAfterApply(Runnable afterApply) {
    this.afterApply = afterApply;
  }

  private volatile Runnable beforeApply = () -> {};

  /** Runs on the apply thread before each client entry is applied (tests hold the apply there). */
  void setBeforeApply(Runnable hook) {
    this.beforeApply = hook;
  }

  /** What runs after each applied entry (tests wrap it). */
  Runnable afterApply() {
    return afterApply;
  }

  /** Ratis' own entries (a new leader's first entry, configurations) are applied here. */
  @Override
  public void notifyTermIndexUpdated(long term, long index) {
    super.notifyTermIndexUpdated(term, index);
    afterApply.run();
  }

  @Override
  public void initialize(RaftServer server, RaftGroupId groupId, RaftStorage raftStorage) throws IOException {
    getLifeCycle().startAndTransition(() -> {
      super.initialize(server, groupId, raftStorage);
      storage.init(raftStorage);
      loadLatestSnapshot();
      snapshots.initialized(raftStorage.getStorageDir().getStateMachineDir());
    }, IOException.class);
  }

  /**
   * Ratis pauses the state machine before it installs a snapshot from the leader and asserts that
   * it is PAUSED when it reloads; {@link #reinitialize} then loads the installed snapshot.
   */
  @Override
  public synchronized void pause() {
    if (getLifeCycle().getCurrentState() == LifeCycle.State.RUNNING) {
      getLifeCycle().transition(LifeCycle.State.PAUSING);
      getLifeCycle().transition(LifeCycle.State.PAUSED);
    }
  }

  /** Ratis calls this after it installed a snapshot sent by the leader (a lagging member). */
  @Override
  public synchronized void reinitialize() throws IOException {
    if (getLifeCycle().getCurrentState() == LifeCycle.State.PAUSED) {
      getLifeCycle().transition(LifeCycle.State.STARTING);
    }
    snapshots.awaitWrite(); // its file must not appear while the storage is read again
    loadInstalledSnapshot();
    snapshots.reloaded();
    snapshotsInstalled.incrementAndGet();
    afterApply.run(); // what waited for an index the snapshot covers may go on
    if (getLifeCycle().getCurrentState() == LifeCycle.State.STARTING) {
      getLifeCycle().transition(LifeCycle.State.RUNNING);
    }
  }

  /** How long {@link #loadInstalledSnapshot} tries before it gives up. */
  private static final long RELOAD_TRIES_NANOS = java.util.concurrent.TimeUnit.SECONDS.toNanos(30);
  private volatile Runnable beforeSnapshotLoad = () -> {};
  private final java.util.concurrent.atomic.AtomicLong reloadRetries = new java.util.concurrent.atomic.AtomicLong();

  /**
   * Loads the newest snapshot in storage after Ratis installed one. A second installation that
   * completes meanwhile (the leader sends the snapshot again after a timeout, or a newer one)
   * replaces the whole state-machine directory: Ratis' {@code SnapshotManager} moves the old one
   * aside, moves the new one in and deletes the old. The file found may then be gone when it is
   * opened, or the directory briefly missing. Thrown out of here, that failure stopped Ratis'
   * apply thread, and Ratis closed the member's Raft server (a member that then stood still:
   * {@link RaftNode#onRaftLost}). So the load is tried again, every 100 ms, on what the directory
   * holds then (the newer snapshot), for up to 30 s; a failure that lasts is thrown.
   */
  private void loadInstalledSnapshot() throws IOException {
    long deadline = System.nanoTime() + RELOAD_TRIES_NANOS;
    for (int attempt = 1; ; attempt++) {
      beforeSnapshotLoad.run();
      try {
        if (storage.loadLatestSnapshot() == null && storage.getLatestSnapshot() == null) {
          throw new IOException("no snapshot in the snapshot directory after an installation");
        }
        loadLatestSnapshot();
        return;
      } catch (IOException | RuntimeException e) {
        if (System.nanoTime() - deadline > 0) {
          throw e;
        }
        reloadRetries.incrementAndGet();
        LOG.warn("loading the installed snapshot failed (attempt {}: {}); a newer installation may be replacing the "
            + "snapshot directory: trying again in 100 ms", attempt, e.toString());
        java.util.concurrent.locks.LockSupport.parkNanos(java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(100));
      }
    }
  }

  /** Runs before each attempt to load an installed snapshot (tests replace the directory there). */
  void setBeforeSnapshotLoad(Runnable hook) {
    this.beforeSnapshotLoad = hook;
  }

  /** Loads of an installed snapshot that failed and were tried again ({@link #loadInstalledSnapshot}). */
  long reloadRetries() {
    return reloadRetries.get();
  }

  /** The newest complete snapshot in this member's snapshot directory (read again from disk), or null. */
  SnapshotInfo latestSnapshotOnDisk() {
    return storage.loadLatestSnapshot();
  }

  /** How many leader snapshots this member has installed since it started. */
  long snapshotsInstalled() {
    return snapshotsInstalled.get();
  }

  private void loadLatestSnapshot() throws IOException {
    SingleFileSnapshotInfo snapshot = storage.getLatestSnapshot();
    if (snapshot == null) {
      if (restoreFile != null && Files.exists(restoreFile)) {
        StoreSnapshot.Position p = StoreSnapshot.load(restoreFile, store, members);
        reloadLeases();
        LOG.info("initialised the state from restored snapshot {} at revision {}", restoreFile, p.revision());
      }
      return;
    }
    Path file = snapshot.getFile().getPath();
    StoreSnapshot.Position p = StoreSnapshot.load(file, store, members);
    reloadLeases();
    setLastAppliedTermIndex(snapshot.getTermIndex());
    LOG.info("loaded snapshot {} (raft index {}, revision {})", file.getFileName(), p.index(), p.revision());
  }

  private void reloadLeases() {
    leaseClock.clear();
    for (long id : store.leaseIds()) {
      store.lease(id).ifPresent(l -> leaseClock.granted(l.id(), l.ttl()));
    }
  }

  @Override
  public SimpleStateMachineStorage getStateMachineStorage() {
    return storage;
  }

  /**
   * A failpoint, as etcd's gofail ones: {@code -Dcapstan.failpoint.apply-fails-at=N} makes the
   * apply of every client entry from Raft index N on throw, as a bug or a broken store would.
   * Off (0) unless set; for tests of what a member does when its apply fails (it exits).
   */
  private static final long FAIL_APPLY_AT = Long.getLong("capstan.failpoint.apply-fails-at", 0);

  @Override
  public CompletableFuture<Message> applyTransaction(TransactionContext trx) {
    RaftProtos.LogEntryProto entry = trx.getLogEntry();
    RaftCommand command;
    try {
      command = RatisBytes.parse(RaftCommand.parser(), entry.getStateMachineLogEntry().getLogData());
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
      // A log entry we cannot read must stop this member rather than be skipped: skipping would
      // make its state diverge from the others'.
      throw new IllegalStateException("unreadable Raft log entry at index " + entry.getIndex(), e);
    }
    beforeApply.run();
    if (FAIL_APPLY_AT > 0 && entry.getIndex() >= FAIL_APPLY_AT) {
      throw new IllegalStateException("failpoint capstan.failpoint.apply-fails-at=" + FAIL_APPLY_AT
          + ": the apply of raft index " + entry.getIndex() + " fails");
    }
    long stale = applier.staleExpiries();
    ApplyResult result = applier.apply(command, entry.getTerm());
    if (applier.staleExpiries() != stale) {
      LOG.info("skipped a lease expiry at raft index {} (term {}): its proposer had decided it as leader of an earlier term",
          entry.getIndex(), entry.getTerm());
    }
    updateLastAppliedTermIndex(entry.getTerm(), entry.getIndex());
    afterApply.run();
    return CompletableFuture.completedFuture(Message.valueOf(UnsafeByteOperations.unsafeWrap(result.toByteArray())));
  }

  /** Lease expiries skipped at apply (see {@link RequestApplier#apply(RaftCommand, long)}). */
  long staleLeaseExpiries() {
    return applier.staleExpiries();
  }

  /**
   * Ratis calls this on its apply thread; the snapshot is written on another ({@link
   * SnapshotWriter}), so this returns at once: the index of a snapshot finished since the last
   * call, or -1.
   */
  @Override
  public long takeSnapshot() throws IOException {
    TermIndex last = getLastAppliedTermIndex();
    if (last == null || last.getIndex() < 0) {
      return RaftLog.INVALID_LOG_INDEX;
    }
    return snapshots.take(last, stopping(), () -> StoreSnapshot.capture(store, members));
  }

  /**
   * Writes a snapshot of the state now, on the calling thread, and registers it (tests: with
   * nothing being applied, the state is that of the last applied entry).
   */
  SnapshotInfo snapshotNow() throws IOException {
    TermIndex last = getLastAppliedTermIndex();
    snapshots.take(last, true, () -> StoreSnapshot.capture(store, members));
    return storage.getLatestSnapshot();
  }

  /** Background snapshot writing, for the tests that hold it up. */
  SnapshotWriter snapshots() {
    return snapshots;
  }

  /** True while this member's Raft server closes: Ratis takes a last snapshot then. */
  private boolean stopping() {
    RaftServer server = getServer().getNow(null);
    try {
      return server == null || server.getDivision(getGroupId()).getInfo().getLifeCycleState().isClosingOrClosed();
    } catch (IOException e) {
      return true; // the division is gone
    }
  }

  /**
   * Asks Ratis for a snapshot (its snapshot-management request): the apply thread then calls
   * {@link #takeSnapshot} even if no entry comes, and is given the one just written.
   */
  private void requestSnapshot() {
    RaftServer server = getServer().getNow(null);
    if (server == null) {
      return;
    }
    try {
      server.snapshotManagementAsync(SnapshotManagementRequest.newCreate(ClientId.randomId(), getId(), getGroupId(),
              CallId.getAndIncrement(), 30_000, 1))
          .whenComplete((reply, e) -> {
            if (e != null || !reply.isSuccess()) {
              LOG.debug("asking Ratis to take the written snapshot failed; it takes it at the next applied entry", e);
            }
          });
    } catch (RuntimeException e) {
      LOG.debug("asking Ratis to take the written snapshot failed; it takes it at the next applied entry", e);
    }
  }

  @Override
  public void close() throws IOException {
    snapshots.close();
    super.close();
  }

  @Override
  public CompletableFuture<Message> query(Message request) {
    Query query;
    try {
      query = RatisBytes.parse(Query.parser(), request.getContent());
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
      return CompletableFuture.failedFuture(e);
    }
    if (query.getQueryCase() == Query.QueryCase.READ_BARRIER) {
      return CompletableFuture.completedFuture(Message.EMPTY);
    }
    LeaderAnswer answer;
    try {
      answer = leaderAnswer(query);
    } catch (RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
    return leadership.confirm(answer.term())
        .thenApply(confirmed -> Message.valueOf(UnsafeByteOperations.unsafeWrap(answer.bytes())));
  }

  /** A leader-only query's answer and the term this member led in when it computed it. */
  record LeaderAnswer(long term, byte[] bytes) {
  }

  /**
   * Answers a leader-only query (lease keep-alive or time-to-live) from the state applied so far;
   * the caller has waited for the apply of what was committed when the query arrived (Ratis' read
   * path, or RaftNode#queryAsLeader's own read index). Throws {@link NotLeaderForQueryException}
   * unless this member leads.
   *
   * <p>The caller must not give the answer out before a majority, asked after it was computed,
   * has confirmed that this member still leads in the answer's term ({@link Leadership#confirm}):
   * a lease's clock is the leader's alone, and a leader that was paused (or cut off) while the
   * others elected another one still believes it leads for a moment after it runs again, with a
   * clock that went on while no keep-alive reached it. It answered TTL 0 for a lease the next
   * leader kept alive (PausedLeaderTest).
   */
  LeaderAnswer leaderAnswer(Query query) {
    long term = leadership.leaderTerm();
    if (term < 0) {
      throw new NotLeaderForQueryException();
    }
    byte[] out = switch (query.getQueryCase()) {
      case LEASE_KEEP_ALIVE -> {
        long id = query.getLeaseKeepAlive();
        yield LeaseKeepAliveResponse.newBuilder()
            .setHeader(ResponseHeader.newBuilder().setRevision(store.currentRevision()))
            .setID(id)
            .setTTL(leaseClock.renew(id))
            .build().toByteArray();
      }
      case LEASE_TIME_TO_LIVE -> timeToLive(query.getLeaseTimeToLive()).toByteArray();
      default -> throw new IllegalArgumentException("unknown query " + query.getQueryCase());
    };
    return new LeaderAnswer(term, out);
  }

  private LeaseTimeToLiveResponse timeToLive(io.etcd.jetcd.api.LeaseTimeToLiveRequest r) {
    LeaseTimeToLiveResponse.Builder out = LeaseTimeToLiveResponse.newBuilder()
        .setHeader(ResponseHeader.newBuilder().setRevision(store.currentRevision()))
        .setID(r.getID());
    var lease = store.lease(r.getID());
    if (lease.isEmpty()) {
      return out.setTTL(-1).build(); // etcd answers an unknown lease with TTL -1, not an error
    }
    out.setGrantedTTL(lease.get().ttl()).setTTL(Math.max(0, leaseClock.remainingSeconds(r.getID())));
    if (r.getKeys()) {
      out.addAllKeys(lease.get().keys());
    }
    return out.build();
  }

  /** A leader-only query reached a member that is no longer the leader; the caller retries. */
  static final class NotLeaderForQueryException extends RuntimeException {
    NotLeaderForQueryException() {
      super("not the leader", null, false, false);
    }
  }

  @Override
  public void notifyLeaderChanged(RaftGroupMemberId groupMemberId, RaftPeerId newLeaderId) {
    if (groupMemberId.getPeerId().equals(newLeaderId)) {
      leaseClock.refreshAll();
      LOG.info("{} became the Raft leader; lease expiries refreshed", newLeaderId);
    } else {
      LOG.info("Raft leader is now {}", newLeaderId);
    }
    afterLeaderChange.run();
  }

  /** Ratis' INVALID_LOG_INDEX without importing the raftlog package into every caller. */
  private static final class RaftLog {
    static final long INVALID_LOG_INDEX = -1;
  }
}
