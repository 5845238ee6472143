package io.capstan.kvstore.raft;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.ratis.conf.Parameters;
import org.apache.ratis.grpc.GrpcFactory;
import org.apache.ratis.netty.NettyFactory;
import org.apache.ratis.protocol.RaftGroupMemberId;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.rpc.RpcFactory;
import org.apache.ratis.rpc.RpcType;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.leader.FollowerInfo;
import org.apache.ratis.server.leader.GapSafeDefaultLogAppender;
import org.apache.ratis.server.leader.LeaderState;
import org.apache.ratis.server.leader.LogAppender;
import org.apache.ratis.server.protocol.TermIndex;
import org.apache.ratis.server.raftlog.RaftLog;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Tells the followers of a new commit index at once, with a heartbeat instead of a log entry, as
 * etcd's leader does when its commit index moves.
 *
 * <p>Ratis 3.2.2 sends a follower the leader's commit index only inside AppendEntries, and sends
 * none when it has no entry to ship until the next heartbeat (250 ms here). Its own remedy is a
 * commit-metadata entry appended after every commit ({@code raft.server.log.log-metadata.enabled}):
 * an extra log entry, fsync and AppendEntries on every member for each commit. This class turns
 * that off and instead sends the new commit index to each follower that would not otherwise hear
 * of it soon, with a heartbeat. On Ratis' Netty transport (the default) the appenders do it
 * themselves as soon as the commit index moves ({@code GapSafeDefaultLogAppender}), before the
 * leader has applied the entry; {@link #signal}, run after each entry the leader applies, only
 * wakes one that missed its wake-up. On the gRPC transport, or with {@code
 * -Dcapstan.raft.commit-news=apply}, {@link #signal} sends the heartbeats.
 *
 * <p>It hooks in as Ratis' RPC type: the gRPC (or Netty) transport unchanged, except that the log
 * appenders it creates are remembered per member (several members share a JVM in tests), so that
 * {@link #signal} can reach those of the member's current leadership, and are {@link
 * GapSafeLogAppender}s (or, on Netty, {@code GapSafeDefaultLogAppender}s).
 */
public final class CommitBroadcast implements RpcType {
  private static final Logger LOG = LoggerFactory.getLogger(CommitBroadcast.class);
  /** Per member: the leadership its appenders belong to, and the appenders. */
  private static final Map<RaftGroupMemberId, Appenders> APPENDERS = new ConcurrentHashMap<>();

  private record Appenders(LeaderState leadership, List<LogAppender> list) {}

  /** Per member, the followers its last {@link #reportFollowers} found silent. */
  private static final Map<RaftGroupMemberId, Set<RaftPeerId>> SILENT = new ConcurrentHashMap<>();

  /** Per leader member: its commit index when {@link #reportFollowers} last saw it move, and since when. */
  private static final Map<RaftGroupMemberId, Progress> PROGRESS = new ConcurrentHashMap<>();

  private record Progress(long commitIndex, long sinceNanos, boolean reported) {}

  /** A leader with entries to commit that has committed nothing for this long logs its followers' state once. */
  static final long STALL_MS = 5_000;

  /** Ratis creates the RPC type from this class' name (raft.rpc.type). */
  public CommitBroadcast() {}

  @Override
  public String name() {
    return CommitBroadcast.class.getName();
  }

  /**
   * Ratis' peer transport: ratis-netty, whose appender sends one request at a time and whose
   * server answers on its event loop (puts +16–26% with 64 in flight and serial puts through a
   * follower +8–37% in two interleaved A/B runs), or with {@code -Dcapstan.raft.transport=grpc}
   * Ratis' gRPC one. Netty is the default since the long partition chaos run's stall on it was
   * found ({@link StalledApplyRepair}; README, "What changed lately").
   */
  static final boolean NETTY = netty(System.getProperty("capstan.raft.transport", "netty"));

  static boolean netty(String transport) {
    return switch (transport) {
      case "netty" -> true;
      case "grpc" -> false;
      default -> throw new IllegalArgumentException(
          "capstan.raft.transport must be netty or grpc, not \"" + transport + "\"");
    };
  }

  /** Whether this JVM's members use Ratis' Netty transport ({@link #NETTY}). */
  public static boolean nettyTransport() {
    return NETTY;
  }

  /**
   * Whether Netty's appenders send commit news when the leader's commit index moves (default,
   * {@code -Dcapstan.raft.commit-news=commit}) or, as before 2026-12-06, only once the leader has
   * applied the entry ({@code apply}: {@link #signal} from the apply thread, with timer rechecks
   * for the slower follower). Kept switchable for A/B runs.
   */
  public static final boolean COMMIT_NEWS_AT_COMMIT = commitNewsAtCommit(System.getProperty("capstan.raft.commit-news", "commit"));

  static boolean commitNewsAtCommit(String when) {
    return switch (when) {
      case "commit" -> true;
      case "apply" -> false;
      default -> throw new IllegalArgumentException(
          "capstan.raft.commit-news must be commit or apply, not \"" + when + "\"");
    };
  }

  /** An appender that sends commit news by itself as soon as the leader's commit index moves. */
  public interface CommitNews {
    /** Whether the follower has been sent {@code commitIndex}, as far as it has the entries to take it. */
    boolean commitNewsSent(long commitIndex);
  }

  @Override
  public RpcFactory newFactory(Parameters parameters) {
    if (NETTY) {
      return new NettyFactory(parameters) {
        @Override
        public LogAppender newLogAppender(RaftServer.Division server, LeaderState state, FollowerInfo follower) {
          return register(server.getMemberId(), state, new GapSafeDefaultLogAppender(server, state, follower));
        }
      };
    }
    return new GrpcFactory(parameters) {
      @Override
      public LogAppender newLogAppender(RaftServer.Division server, LeaderState state, FollowerInfo follower) {
        return register(server.getMemberId(), state, new GapSafeLogAppender(server, state, follower));
      }
    };
  }

  private static LogAppender register(RaftGroupMemberId member, LeaderState leadership, LogAppender appender) {
    APPENDERS.compute(member, (m, current) -> {
      List<LogAppender> list = new ArrayList<>();
      if (current != null && current.leadership() == leadership) {
        // Ratis replaces a failed follower's appender with a new one: keep only the newest.
        current.list().stream().filter(a -> !a.getFollowerId().equals(appender.getFollowerId())).forEach(list::add);
      }
      list.add(appender);
      return new Appenders(leadership, List.copyOf(list));
    });
    return appender;
  }

  /**
   * The leader {@code member} has committed (and applied) up to {@code commitIndex}: make each
   * follower hear it now. A follower with entries still to be sent gets the commit index with them.
   * One that has acknowledged the entries gets a heartbeat now. One that has not yet (commit needs
   * only one of two followers) would cap the commit index at what it has flushed, so it gets its
   * heartbeat once its acknowledgement is in: {@code timer} checks again every millisecond, for at
   * most {@link #RECHECKS} times. Cheap and non-blocking: a trigger sets a flag and wakes the
   * appender thread, and triggers coalesce.
   */
  static void signal(RaftGroupMemberId member, long commitIndex, ScheduledExecutorService timer) {
    Appenders appenders = APPENDERS.get(member);
    if (appenders == null) {
      return;
    }
    for (LogAppender a : appenders.list()) {
      push(a, commitIndex, timer, RECHECKS);
    }
  }

  private static final int RECHECKS = 50;

  private static void push(LogAppender a, long commitIndex, ScheduledExecutorService timer, int rechecks) {
    FollowerInfo f = a.getFollower();
    if (!a.isRunning() || f.getCommitIndex() >= commitIndex) {
      return;
    }
    if (COMMIT_NEWS_AT_COMMIT && a instanceof CommitNews news) {
      // It sent the news when the commit index moved, or sends it with its follower's next reply;
      // woken only should it have missed the wake-up (Ratis' AwaitForSignal drops a signal that
      // comes before the wait).
      if (!news.commitNewsSent(commitIndex)) {
        a.notifyLogAppender();
      }
      return;
    }
    // The gRPC appender moves the next index when it sends, so entries still to send are unsent
    // and will carry the commit index. Netty's moves it on the reply: its "entries to send" may be
    // the request in flight, built with the older commit index, so it is checked again below.
    if (a.hasAppendEntries() && a instanceof GapSafeLogAppender) {
      return;
    }
    if (f.getMatchIndex() >= commitIndex) {
      a.triggerHeartbeat();
    } else if (rechecks > 0 && !timer.isShutdown()) {
      try {
        timer.schedule(() -> push(a, commitIndex, timer, rechecks - 1), 1, TimeUnit.MILLISECONDS);
      } catch (RejectedExecutionException stopping) {
        // the member is closing
      }
    }
  }

  /**
   * On the leader {@code member}: logs one line when a follower has not answered for {@code
   * silentMs} and one when it answers again, and returns how many are silent now (0 on a
   * follower). Ratis' appender logs a warning on each failed attempt, about one per entry
   * while a follower is down (~100 lines a second under load), so Capstan turns that logger down
   * and reports the state changes here.
   */
  static int reportFollowers(RaftGroupMemberId member, long silentMs) {
    Appenders appenders = APPENDERS.get(member);
    Set<RaftPeerId> silent = SILENT.computeIfAbsent(member, m -> ConcurrentHashMap.newKeySet());
    if (appenders == null || appenders.list().stream().noneMatch(LogAppender::isRunning)) {
      silent.clear();
      PROGRESS.remove(member);
      return 0;
    }
    for (LogAppender a : appenders.list()) {
      if (!a.isRunning() || !(a instanceof FollowerSilence appender)) {
        continue;
      }
      FollowerInfo f = a.getFollower();
      long quietMs = appender.silentMs();
      if (quietMs > silentMs) {
        if (silent.add(f.getId())) {
          LOG.warn("follower {} has not answered for {} ms; the leader keeps retrying (match index {}, leader's last {})",
              f.getId(), quietMs, f.getMatchIndex(), a.getRaftLog().getLastEntryTermIndex());
        }
      } else if (silent.remove(f.getId())) {
        LOG.info("follower {} answers again (match index {}, next index {})", f.getId(), f.getMatchIndex(), f.getNextIndex());
      }
    }
    reportStall(member, appenders.list());
    return silent.size();
  }

  /**
   * Logs one line when the leader {@code member} holds entries it has not committed for {@link
   * #STALL_MS} (a majority should take them in milliseconds), with what it knows of each follower:
   * what an operator, or the next engineer, needs to tell a follower that does not answer from an
   * appender that sends nothing. One more line when commits resume.
   */
  private static void reportStall(RaftGroupMemberId member, List<LogAppender> appenders) {
    RaftLog log = appenders.get(0).getRaftLog();
    long commit = log.getLastCommittedIndex();
    TermIndex last = log.getLastEntryTermIndex();
    long now = System.nanoTime();
    Progress p = PROGRESS.get(member);
    if (p == null || p.commitIndex() != commit || last == null || last.getIndex() <= commit) {
      if (p != null && p.reported()) {
        LOG.info("the leader commits again (commit index {}) after {} ms", commit, (now - p.sinceNanos()) / 1_000_000);
      }
      PROGRESS.put(member, new Progress(commit, now, false));
    } else if (!p.reported() && now - p.sinceNanos() > STALL_MS * 1_000_000) {
      LOG.warn("the leader has committed nothing for {} ms (commit index {}, last entry {}); followers: {}",
          (now - p.sinceNanos()) / 1_000_000, commit, last, appenders.stream().map(CommitBroadcast::describe).toList());
      PROGRESS.put(member, new Progress(commit, p.sinceNanos(), true));
    }
  }

  private static String describe(LogAppender a) {
    FollowerInfo f = a.getFollower();
    return f.getId() + " (" + (a.isRunning() ? "running" : "stopped") + ", next " + f.getNextIndex() + ", match "
        + f.getMatchIndex() + ", commit " + f.getCommitIndex() + ", entries to send " + a.hasAppendEntries()
        + ", last send " + f.getLastRpcSendTime().elapsedTimeMs() + " ms ago, last answer "
        + f.getLastRpcResponseTime().elapsedTimeMs() + " ms ago)";
  }

  /** Forgets a member's appenders (the member stopped). */
  static void forget(RaftGroupMemberId member) {
    APPENDERS.remove(member);
    SILENT.remove(member);
    PROGRESS.remove(member);
  }
}
