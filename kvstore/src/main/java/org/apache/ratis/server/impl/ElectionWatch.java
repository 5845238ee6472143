package org.apache.ratis.server.impl;

import java.util.concurrent.ThreadLocalRandom;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.server.RaftServer;

/**
 * Has a follower stand for election as soon as its leader has been silent for a randomized
 * election timeout, looked at when that silence would reach it, as etcd's ticking election timer notices.
 *
 * <p>Ratis' own timer ({@code FollowerState}) sleeps a random election timeout and then checks
 * whether the leader was silent for the whole of it. A leader that dies part-way through a sleep
 * fails that check and is noticed only at the end of the next sleep: between the minimum and
 * twice the maximum timeout after its last word (0.5 to 2 s with Capstan's 1 s election timeout,
 * about 1.1 s on average) instead of the timeout itself (0.5 to 1 s). The chaos test's writes
 * resumed up to 2.8 s after a leader kill that way.
 *
 * <p>It does not poll: each look says when the next is due ({@link #nextLookDelayNanos}), at the
 * moment the silence it saw would reach the timeout, and at most {@code maxPeriodMs} later so that
 * a new follower term, a step-down or a leader's silence that began after the look is seen in
 * time (a new term's timeout is at least half the election timeout, far longer). A follower whose
 * leader speaks is looked at every {@code maxPeriodMs}; before it looked every 10 ms on every
 * member, the leader included, about 100 wake-ups a second per member for nothing.
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

  /** The next look after one that found the silence long enough but Ratis' conditions unmet. */
  private static final long RETRY_NANOS = 10_000_000L;

  private final RaftServerImpl server;
  private final long minMs;
  private final long maxMs;
  private final long stepDownWaitMs;
  private final long pauseThresholdNanos;
  private final long maxPeriodNanos;

  private FollowerState watched;
  private long timeoutMs;
  /** When the next look was planned (0 before the first): a look later than that by more than the pause threshold means a paused JVM. */
  private long plannedLookNanos;
  private long nextDelayNanos;
  private long holdUntilNanos = System.nanoTime();
  private boolean wasLeader;
  private long steppedDownAtNanos;

  /** @param maxPeriodMs the longest wait between two looks */
  public ElectionWatch(RaftServer.Division division, long maxPeriodMs) {
    this.server = (RaftServerImpl) division;
    this.minMs = server.properties().minRpcTimeoutMs();
    this.maxMs = server.properties().maxRpcTimeoutMs();
    this.stepDownWaitMs = server.getLeaderStepDownWaitTime().toLong(java.util.concurrent.TimeUnit.MILLISECONDS);
    this.pauseThresholdNanos = server.getSleepDeviationThreshold().toLong(java.util.concurrent.TimeUnit.NANOSECONDS);
    this.maxPeriodNanos = maxPeriodMs * 1_000_000L;
    this.nextDelayNanos = maxPeriodNanos;
  }

  /** How long after the last look the next one is due: the caller schedules it then. */
  public long nextLookDelayNanos() {
    return nextDelayNanos;
  }

  /**
   * One look, from a single thread, each {@link #nextLookDelayNanos} after the one before: starts
   * an election and says so if the leader has been silent for this term's timeout; null otherwise.
   */
  public Election look() {
    long now = System.nanoTime();
    Election called = lookAt(now);
    plannedLookNanos = now + nextDelayNanos;
    return called;
  }

  private Election lookAt(long now) {
    nextDelayNanos = maxPeriodNanos;
    if (plannedLookNanos != 0 && now - plannedLookNanos > pauseThresholdNanos) {
      // this JVM was paused: the leader's words may still wait to be read, so the silence may be
      // ours; wait a whole timeout again, as Ratis' timer does after a long sleep
      holdUntilNanos = now + maxMs * 1_000_000L;
    }
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
    if (fs == null) {
      return null; // a leader, a candidate or a listener: look again in the longest period
    }
    // how long until an election could be due: the timeout reached, the holds over
    long dueIn = (timeoutMs - fs.getLastRpcTime().elapsedTimeMs()) * 1_000_000L;
    dueIn = Math.max(dueIn, holdUntilNanos - now);
    if (steppedDownAtNanos != 0) {
      dueIn = Math.max(dueIn, steppedDownAtNanos + stepDownWaitMs * 1_000_000L - now);
    }
    if (dueIn > 0) {
      lookIn(dueIn);
      return null;
    }
    // the server's lock only once the silence is long enough: Ratis takes it on every append
    synchronized (server) {
      RaftPeerId silentLeader = server.getState().getLeaderId();
      if (silentLeader == null || server.getRole().getFollowerState().orElse(null) != fs
          || !server.getInfo().isFollower() || !server.getInfo().isAlive() || fs.getOutstandingOp() != 0) {
        lookIn(RETRY_NANOS); // e.g. an append still in progress
        return null;
      }
      long silentMs = fs.getLastRpcTime().elapsedTimeMs();
      if (silentMs < timeoutMs) {
        lookIn((timeoutMs - silentMs) * 1_000_000L);
        return null;
      }
      server.changeToCandidate(false);
      return new Election(silentLeader, silentMs, timeoutMs);
    }
  }

  /** The next look in {@code nanos}, at least 1 ms and at most the longest period away. */
  private void lookIn(long nanos) {
    nextDelayNanos = Math.max(1_000_000L, Math.min(maxPeriodNanos, nanos));
  }
}
