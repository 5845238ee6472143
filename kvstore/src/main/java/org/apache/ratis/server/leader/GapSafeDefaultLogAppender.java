package org.apache.ratis.server.leader;

import io.capstan.kvstore.raft.FollowerSilence;
import io.capstan.kvstore.raft.GapSafeLogAppender;
import org.apache.ratis.proto.RaftProtos.AppendEntriesRequestProto;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.raftlog.RaftLogIOException;
import org.apache.ratis.statemachine.SnapshotInfo;

/**
 * Ratis' one-request-at-a-time log appender (the one its Netty transport uses), with the same
 * purged-gap fix as {@link GapSafeLogAppender}: see there for the bug and the two places.
 *
 * <p>It sits in Ratis' package because {@link LogAppenderDefault} is package-private; Capstan
 * runs on the class path, where a package may span jars. Recheck on every Ratis upgrade.
 */
public final class GapSafeDefaultLogAppender extends LogAppenderDefault implements FollowerSilence {
  private final long createdNanos = System.nanoTime();

  public GapSafeDefaultLogAppender(RaftServer.Division server, LeaderState leaderState, FollowerInfo follower) {
    super(server, leaderState, follower);
  }

  @Override
  public long silentMs() {
    return FollowerSilence.silentMs(this, createdNanos);
  }

  @Override
  public SnapshotInfo shouldInstallSnapshot() {
    SnapshotInfo snapshot = super.shouldInstallSnapshot();
    return snapshot != null ? snapshot : GapSafeLogAppender.snapshotOverGap(this);
  }

  @Override
  public AppendEntriesRequestProto newAppendEntriesRequest(long callId, boolean heartbeat) throws RaftLogIOException {
    if (!heartbeat && GapSafeLogAppender.snapshotOverGap(this) != null) {
      return null;
    }
    return super.newAppendEntriesRequest(callId, heartbeat);
  }
}
