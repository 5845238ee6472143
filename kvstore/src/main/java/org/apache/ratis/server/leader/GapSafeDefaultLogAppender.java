package org.apache.ratis.server.leader;

import io.capstan.kvstore.raft.CommitBroadcast;
import io.capstan.kvstore.raft.FollowerSilence;
import io.capstan.kvstore.raft.GapSafeLogAppender;
import org.apache.ratis.proto.RaftProtos.AppendEntriesRequestProto;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.raftlog.RaftLogIOException;
import org.apache.ratis.statemachine.SnapshotInfo;

/**
 * Ratis' one-request-at-a-time log appender (the one its Netty transport uses), with the same
 * purged-gap fix as {@link GapSafeLogAppender} (see there for the bug and the two places), and
 * commit news sent as soon as the commit index moves ({@link #commitNewsDue}).
 *
 * <p>It sits in Ratis' package because {@link LogAppenderDefault} is package-private; Capstan
 * runs on the class path, where a package may span jars. Recheck on every Ratis upgrade.
 */
public final class GapSafeDefaultLogAppender extends LogAppenderDefault implements FollowerSilence, CommitBroadcast.CommitNews {
  private final long createdNanos = System.nanoTime();
  /**
   * The commit index this follower has been sent as far as it can take it: the least of the
   * leader's commit index and the follower's match index when the last request sent was built.
   * Written on the appender's thread; volatile for {@link #commitNewsSent} from the apply thread.
   */
  private volatile long commitSent = -1;
  /** {@link #commitNewsFor} when the last request was built (the appender's thread only). */
  private long newsBuilt = -1;

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
    newsBuilt = commitNewsFor();
    return super.newAppendEntriesRequest(callId, heartbeat);
  }

  /**
   * Ratis calls this right before it sends the request it built last (it may build a heartbeat
   * twice and send the second): that request carries at least {@link #newsBuilt} (a heartbeat
   * carries min(commit, next - 1), entries min(commit, previous + count), and with nothing left to
   * send next - 1 is the last index, at least the match index).
   */
  @Override
  protected void resetHeartbeatTrigger() {
    super.resetHeartbeatTrigger();
    if (newsBuilt > commitSent) {
      commitSent = newsBuilt;
    }
  }

  /**
   * Zero, a heartbeat now, when the follower has every entry but does not yet know that some of
   * them are committed. Ratis' leader wakes every appender when its commit index moves (its event
   * processor, right after a majority acknowledged), and this appender's own loop asks again after
   * each reply; with the usual wait otherwise. So a follower hears of a commit before the leader
   * has applied it, and a follower slower than the majority hears of it with the reply to its
   * entries, from the same thread, without another thread looking in (the commit news of Ratis
   * 3.3.0 otherwise rides on the next entry or the next periodic heartbeat; see {@link CommitBroadcast}).
   */
  @Override
  public long getHeartbeatWaitTimeMs() {
    return commitNewsDue() ? 0 : super.getHeartbeatWaitTimeMs();
  }

  /**
   * Asked several times a round (Ratis' loop asks for the wait before and after each send): the
   * two index reads first, as {@link #hasAppendEntries} takes two of the log's read locks and
   * allocates on each call (its share of the leader's allocation was ~10% before this order).
   */
  private boolean commitNewsDue() {
    return CommitBroadcast.COMMIT_NEWS_AT_COMMIT && commitNewsFor() > commitSent && !hasAppendEntries();
  }

  /** The commit index the follower can take now: the leader's, up to what the follower has acknowledged. */
  private long commitNewsFor() {
    return Math.min(getRaftLog().getLastCommittedIndex(), getFollower().getMatchIndex());
  }

  @Override
  public boolean commitNewsSent(long commitIndex) {
    return commitSent >= Math.min(commitIndex, getFollower().getMatchIndex());
  }
}
