package io.capstan.kvstore;

import io.capstan.common.DaemonThreads;
import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Compacts the history on its own, as etcd 3.4's compactor does ({@link AutoCompaction}).
 *
 * <p>Periodic mode: every check interval (a tenth of {@code min(period, 1h)}) it notes the current
 * revision, keeping the notes of the last {@code period}. Once {@code period} has passed since it
 * started (then every {@code min(period, 1h)} after a compaction) it compacts to the oldest note:
 * the revision of {@code period} ago, so that history stays readable for at least that long.
 * Revision mode: every check interval it compacts to the current revision less {@code revisions}.
 *
 * <p>Every member notes revisions (all apply the same log), but only the leader proposes: a
 * compaction is an ordinary Raft command, applied by every member at the same log position. A
 * failed proposal is tried again at the next check; a revision already compacted counts as done.
 * {@link #check} is the whole decision and takes the time as an argument, so that tests drive it.
 */
public final class AutoCompactor implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(AutoCompactor.class);

  /** What the compactor reads and does; the member's store and Raft node. */
  public interface Target {
    long currentRevision();

    long compactRevision();

    /** Whether this member is the leader, ready to propose. */
    boolean isLeader();

    /** Proposes a compaction to {@code revision}; completes when it is applied here. */
    CompletableFuture<?> compact(long revision);
  }

  private final AutoCompaction policy;
  private final Target target;
  private final ArrayDeque<Long> notes = new ArrayDeque<>();
  private final int notesKept;
  private final AtomicLong compactions = new AtomicLong();
  private final AtomicLong failures = new AtomicLong();
  private long lastSuccess;
  private long wait;
  private long previous;
  private ScheduledExecutorService timer;

  /** A compactor that has started at {@code nowNanos}; nothing runs until {@link #check} or {@link #start}. */
  AutoCompactor(AutoCompaction policy, Target target, long nowNanos) {
    if (!policy.enabled()) {
      throw new IllegalArgumentException("auto-compaction is off");
    }
    this.policy = policy;
    this.target = target;
    this.notesKept = policy.mode() == AutoCompaction.Mode.PERIODIC
        ? (int) (policy.period().toNanos() / policy.checkInterval().toNanos()) + 1 : 0;
    this.lastSuccess = nowNanos;
    this.wait = policy.period().toNanos();
    if (notesKept > 0) {
      notes.addLast(target.currentRevision());
    }
  }

  /** Starts a compactor that checks every {@code policy.checkInterval()} on its own thread. */
  public static AutoCompactor start(AutoCompaction policy, Target target) {
    AutoCompactor c = new AutoCompactor(policy, target, System.nanoTime());
    c.timer = DaemonThreads.scheduler("auto-compactor");
    long every = policy.checkInterval().toNanos();
    c.timer.scheduleWithFixedDelay(() -> {
      try {
        c.check(System.nanoTime());
      } catch (RuntimeException e) {
        LOG.warn("auto-compaction check failed; will check again", e);
      }
    }, every, every, TimeUnit.NANOSECONDS);
    LOG.info("auto-compaction on ({}), checking every {} ms", policy, policy.checkInterval().toMillis());
    return c;
  }

  /**
   * One look at {@code nowNanos}: notes the revision (periodic mode) and, if this member leads and
   * it is time, proposes a compaction and waits for it.
   *
   * @return the revision compacted to, or 0 if none was
   */
  long check(long nowNanos) {
    long revision;
    if (policy.mode() == AutoCompaction.Mode.PERIODIC) {
      notes.addLast(target.currentRevision());
      if (notes.size() > notesKept) {
        notes.removeFirst();
      }
      if (!target.isLeader() || nowNanos - lastSuccess < wait) {
        return 0;
      }
      wait = policy.compactInterval().toNanos();
      revision = notes.peekFirst();
      if (revision <= target.compactRevision()) {
        lastSuccess = nowNanos;
        return 0;
      }
    } else {
      if (!target.isLeader()) {
        return 0;
      }
      revision = target.currentRevision() - policy.revisions();
      if (revision <= 0 || revision == previous || revision <= target.compactRevision()) {
        return 0;
      }
    }
    LOG.info("auto-compaction ({}): compacting to revision {}", policy, revision);
    try {
      target.compact(revision).get(1, TimeUnit.MINUTES);
    } catch (ExecutionException e) {
      // compacted already, by a client or by the last leader: done
      if (revision > target.compactRevision()) {
        failures.incrementAndGet();
        LOG.warn("auto-compaction to revision {} failed; will try again in {} ms: {}", revision,
            policy.checkInterval().toMillis(), e.getCause().getMessage());
        return 0;
      }
    } catch (TimeoutException e) {
      failures.incrementAndGet();
      LOG.warn("auto-compaction to revision {} took over a minute; will try again", revision);
      return 0;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return 0;
    }
    compactions.incrementAndGet();
    lastSuccess = nowNanos;
    previous = revision;
    return revision;
  }

  /** Compactions this member proposed and saw done (applied, or found done already by another). */
  public long compactions() {
    return compactions.get();
  }

  /** Compactions this member proposed that failed (and were retried at the next check). */
  public long failures() {
    return failures.get();
  }

  @Override
  public void close() {
    if (timer != null) {
      timer.shutdownNow();
    }
  }
}
