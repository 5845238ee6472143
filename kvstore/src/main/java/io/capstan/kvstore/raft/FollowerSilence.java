package io.capstan.kvstore.raft;

import org.apache.ratis.server.leader.LogAppender;

/** A Capstan log appender that can tell how long its follower has been silent ({@link CommitBroadcast#reportFollowers}). */
public interface FollowerSilence {
  /** Milliseconds since the follower last answered, or since this appender began if it has not yet. */
  long silentMs();

  /** {@link #silentMs} of {@code appender}, created at {@code createdNanos} ({@link System#nanoTime}). */
  static long silentMs(LogAppender appender, long createdNanos) {
    long sinceCreated = (System.nanoTime() - createdNanos) / 1_000_000;
    return Math.min(appender.getFollower().getLastRpcResponseTime().elapsedTimeMs(), sinceCreated);
  }
}
