package io.capstan.kvstore.raft;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.impl.StateMachineReload;
import org.apache.ratis.server.protocol.TermIndex;
import org.apache.ratis.server.raftlog.RaftLog;
import org.apache.ratis.statemachine.SnapshotInfo;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Restarts a member's apply when Ratis lost the reload of a snapshot it installed.
 *
 * <p>A member that installs a snapshot from the leader moves the files into place, has its log
 * drop the entries the snapshot covers, and flags its state-machine updater to reload; the
 * updater loads the snapshot later, on its own thread, and ends that reload by marking itself
 * running. A second installation that completes while the first reload is still loading (the
 * leader had taken a newer snapshot and purged the entries after the first) flags the updater
 * again, and the first reload's end overwrites that flag (Ratis 3.3.0, {@code
 * StateMachineUpdater.reload}). The member is left with an applied index below its log's first
 * entry and no reload to come: the updater looks for the next entry, finds none, and spins (one
 * core at 100%) while the member goes on taking entries, acknowledging and voting. Nothing it
 * applies again: a client write it proposes as leader never completes. Seen in the partition
 * chaos run on Ratis' Netty transport, where a timed-out installation is sent again at once
 * ({@code ChaosTest}, member e2: applied index 999, commit index 3,791).
 *
 * <p>{@link #check} (every half second) notices an applied index that stays below the log's
 * first entry while there is more to apply, for {@link #STALL_MS}, and redoes the reload from the
 * newest snapshot on disk. A reload that is only slow is reloaded once more at worst: the
 * snapshot files are complete before Ratis drops the log entries, so loading the newest is always
 * right.
 */
final class StalledApplyRepair {
  private static final Logger LOG = LoggerFactory.getLogger(StalledApplyRepair.class);
  /** How long the applied index must stay stuck below the log's first entry. */
  static final long STALL_MS = 3_000;

  private final RaftServer.Division division;
  private final KvStateMachine stateMachine;
  final AtomicLong repairs = new AtomicLong();
  /** The applied index first seen stuck, and when; only the timer thread touches them. */
  private long stuckAt = RaftLog.INVALID_LOG_INDEX;
  private long stuckSinceNanos;

  StalledApplyRepair(RaftServer.Division division, KvStateMachine stateMachine) {
    this.division = division;
    this.stateMachine = stateMachine;
  }

  void check() {
    RaftLog log = division.getRaftLog();
    TermIndex last = stateMachine.getLastAppliedTermIndex();
    long applied = last == null ? RaftLog.INVALID_LOG_INDEX : last.getIndex();
    long start = log.getStartIndex();
    long commit = log.getLastCommittedIndex();
    // the entries up to the log's snapshot index are dropped; an empty log (no start) has none
    long dropped = start == RaftLog.INVALID_LOG_INDEX ? log.getSnapshotIndex() : start - 1;
    if (applied >= commit || dropped <= applied) {
      stuckAt = RaftLog.INVALID_LOG_INDEX;
      return;
    }
    long now = System.nanoTime();
    if (stuckAt != applied) {
      stuckAt = applied;
      stuckSinceNanos = now;
      return;
    }
    long stuckMs = (now - stuckSinceNanos) / 1_000_000;
    if (stuckMs < STALL_MS) {
      return;
    }
    stuckSinceNanos = now; // at most one attempt per STALL_MS
    SnapshotInfo latest = stateMachine.latestSnapshotOnDisk();
    if (latest == null || latest.getIndex() < dropped) {
      LOG.error("applied nothing for {} ms: applied index {}, commit index {}, the log has dropped the entries up to {}, and "
          + "the newest snapshot on disk ({}) does not reach it: this member cannot catch up by itself; restart it with an "
          + "empty data directory", stuckMs, applied, commit, dropped, latest);
      return;
    }
    LOG.warn("applied nothing for {} ms: applied index {}, commit index {}, but the log has dropped the entries up to {} (an "
        + "installed snapshot was not loaded); reloading the state machine from {}", stuckMs, applied, commit, dropped,
        latest.getTermIndex());
    repairs.incrementAndGet();
    // not on the caller's (timer) thread: pausing waits for a reload that is still loading
    ForkJoinPool.commonPool().execute(() -> {
      stateMachine.pause();
      StateMachineReload.reload(division);
    });
  }
}
