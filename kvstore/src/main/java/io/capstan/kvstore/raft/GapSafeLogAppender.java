package io.capstan.kvstore.raft;

import org.apache.ratis.grpc.server.GrpcLogAppender;
import org.apache.ratis.proto.RaftProtos.AppendEntriesRequestProto;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.leader.FollowerInfo;
import org.apache.ratis.server.leader.LeaderState;
import org.apache.ratis.server.leader.LogAppender;
import org.apache.ratis.server.raftlog.RaftLog;
import org.apache.ratis.server.raftlog.RaftLogIOException;
import org.apache.ratis.statemachine.SnapshotInfo;

/**
 * Ratis' gRPC log appender, except that it sends a follower the snapshot when the entry before
 * the follower's next index was purged, not only when the next index itself was.
 *
 * <p>Ratis 3.2.2 and 3.3.0 install a snapshot only when {@code nextIndex < log start}. When {@code
 * nextIndex == log start}, the AppendEntries it builds instead needs the previous entry's term,
 * which is gone unless the snapshot sits exactly at {@code nextIndex - 1}; 3.2.2's appender then
 * failed its own precondition ("Previous TermIndex not found"), stopped and was never restarted;
 * 3.3.0's skips the AppendEntries ("previous log entry is unavailable") and retries forever. Either
 * way the follower never catches up. That is the usual case after a leader is killed: the new term starts a new
 * log segment right after the old leader's last entry, and once the new leader purges the old
 * term's segments its log starts exactly at the old leader's next index. {@code
 * SnapshotCatchUpTest} and the e2e {@code ChaosTest} reproduce it.
 *
 * <p>Two places, because the follower's next index moves under the appender: Ratis checks for a
 * snapshot ({@link #shouldInstallSnapshot}) before it takes the lock under which a reply lowers
 * the next index and the request is built ({@link #newAppendEntriesRequest}). An INCONSISTENCY
 * reply in between sent the appender to the purged gap anyway, so the request builder declines
 * (Ratis then sends nothing this round) and the next round installs the snapshot.
 */
public final class GapSafeLogAppender extends GrpcLogAppender implements FollowerSilence {
  private final long createdNanos = System.nanoTime();

  GapSafeLogAppender(RaftServer.Division server, LeaderState leaderState, FollowerInfo follower) {
    super(server, leaderState, follower);
  }

  @Override
  public long silentMs() {
    return FollowerSilence.silentMs(this, createdNanos);
  }

  @Override
  public SnapshotInfo shouldInstallSnapshot() {
    SnapshotInfo snapshot = super.shouldInstallSnapshot();
    return snapshot != null ? snapshot : snapshotOverGap(this);
  }

  @Override
  public AppendEntriesRequestProto newAppendEntriesRequest(long callId, boolean heartbeat) throws RaftLogIOException {
    if (!heartbeat && snapshotOverGap(this) != null) {
      return null;
    }
    return super.newAppendEntriesRequest(callId, heartbeat);
  }

  /**
   * The snapshot to send {@code appender}'s follower if its next entry is still in the log but the
   * previous one was purged; null if the follower is not in that gap. Shared with the Netty
   * transport's appender ({@code org.apache.ratis.server.leader.GapSafeDefaultLogAppender}).
   */
  public static SnapshotInfo snapshotOverGap(LogAppender appender) {
    long next = appender.getFollower().getNextIndex();
    // A snapshot at next - 1 stands in for the previous entry; one past it is what the follower
    // needs. Asked first: on every request to a follower that keeps up there is none, and the
    // log's questions below each take its read locks and allocate (Ratis asks before each request).
    SnapshotInfo latest = appender.getServer().getStateMachine().getLatestSnapshot();
    if (latest == null || latest.getIndex() < next || next <= RaftLog.LEAST_VALID_LOG_INDEX) {
      return null;
    }
    RaftLog log = appender.getRaftLog();
    return next >= log.getNextIndex() || log.getTermIndex(next - 1) != null ? null : latest;
  }
}
