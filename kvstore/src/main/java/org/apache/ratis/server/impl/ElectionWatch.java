package org.apache.ratis.server.impl;

import java.util.concurrent.ThreadLocalRandom;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.server.RaftServer;

/**
 * Has a follower stand for election as soon as its leader has been silent for a randomized
 * election timeout, looked at every few milliseconds, as etcd's ticking election timer does.
 *
 * <p>Ratis' own timer ({@code FollowerState}) sleeps a random election timeout and then checks
 * whether the leader was silent for the whole of it. A leader that dies part-way through a sleep
 * fails that check and is noticed only at the end of the next sleep: between the minimum and
 * twice the maximum timeout after its last word (0.5 to 2 s with Capstan's 1 s election timeout,
 * about 1.1 s on average) instead of the timeout itself (0.5 to 1 s). The chaos test's writes
 * resumed up to 2.8 s after a leader kill that way.
 *
 * <p>The watch applies Ratis' own conditions, under the server's lock as Ratis does: a follower
 * that names a leader, with no append in progress, silent for a timeout drawn from Ratis' range
 * once per follower term (a new {@code FollowerState}). It leaves Ratis' timer in place: whichever
 * sees the silence first calls the election, and Ratis' election (pre-vote first) runs as usual.
 * Two Ratis safeguards are kept: after a step-down this member does not call an election for
 * Ratis' step-down wait (Ratis applies it after a leader lost its majority), and after a look that
 * comes late by more than Ratis' sleep-deviation threshold (this JVM was paused, so the silence may
 * be its own) it calls none for a whole election timeout.
 *
 * <p>It sits in Ratis' package because {@code RaftServerImpl.getRole()}, {@code FollowerState} and
 * {@code changeToCandidate} are package-private; Capstan runs on the class path, where a package
 * may span jars. Recheck on every Ratis upgrade.
 */
public final class ElectionWatch {
  /** What a look found worth a log line: the silence and the timeout it exceeded. */
  public record Election(RaftPeerId silentLeader, long silentMs, long timeoutMs) {}

  private final RaftServerImpl server;
  private final long minMs;
  private final long maxMs;
  private final long stepDownWaitMs;
  private final long pauseThresholdNanos;
  private final long periodNanos;

  private FollowerState watched;
  private long timeoutMs;
  private long lastLookNanos;
  private long holdUntilNanos = System.nanoTime();
  private boolean wasLeader;
  private long steppedDownAtNanos;

  /** @param periodMs how often {@link #look} is called */
  public ElectionWatch(RaftServer.Division division, long periodMs) {
    this.server = (RaftServerImpl) division;
    this.minMs = server.properties().minRpcTimeoutMs();
    this.maxMs = server.properties().maxRpcTimeoutMs();
    this.stepDownWaitMs = server.getLeaderStepDownWaitTime().toLong(java.util.concurrent.TimeUnit.MILLISECONDS);
    this.pauseThresholdNanos = server.getSleepDeviationThreshold().toLong(java.util.concurrent.TimeUnit.NANOSECONDS);
    this.periodNanos = periodMs * 1_000_000L;
  }

  /**
   * One look, from a single thread every {@code periodMs}: starts an election and says so if the
   * leader has been silent for this term's timeout; null otherwise.
   */
  public Election look() {
    long now = System.nanoTime();
    if (lastLookNanos != 0 && now - lastLookNanos > periodNanos + pauseThresholdNanos) {
      // this JVM was paused: the leader's words may still wait to be read, so the silence may be
      // ours; wait a whole timeout again, as Ratis' timer does after a long sleep
      holdUntilNanos = now + maxMs * 1_000_000L;
    }
    lastLookNanos = now;
    boolean leader = server.getInfo().isLeader();
    if (wasLeader && !leader) {
      steppedDownAtNanos = now;
    }
    wasLeader = leader;
    FollowerState fs = server.getRole().getFollowerState().orElse(null);
    if (fs != watched) {
      watched = fs;
      timeoutMs = minMs + ThreadLocalRandom.current().nextLong(maxMs - minMs + 1);
    }
    // the server's lock only once the silence is long enough: Ratis takes it on every append
    if (fs == null || fs.getLastRpcTime().elapsedTimeMs() < timeoutMs || now - holdUntilNanos < 0
        || (steppedDownAtNanos != 0 && now - steppedDownAtNanos < stepDownWaitMs * 1_000_000L)) {
      return null;
    }
    synchronized (server) {
      RaftPeerId silentLeader = server.getState().getLeaderId();
      if (silentLeader == null || server.getRole().getFollowerState().orElse(null) != fs
          || !server.getInfo().isFollower() || !server.getInfo().isAlive() || fs.getOutstandingOp() != 0) {
        return null;
      }
      long silentMs = fs.getLastRpcTime().elapsedTimeMs();
      if (silentMs < timeoutMs) {
        return null;
      }
      server.changeToCandidate(false);
      return new Election(silentLeader, silentMs, timeoutMs);
    }
  }
}
