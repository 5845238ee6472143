package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.capstan.kvstore.testing.MiniCluster;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A follower stands for election once its leader has been silent for its randomized election
 * timeout (between half the configured election timeout and all of it), not up to twice that
 * later as with Ratis' own timer alone ({@link org.apache.ratis.server.impl.ElectionWatch}).
 */
class ElectionWatchTest {
  private static final Duration ELECTION_TIMEOUT = Duration.ofSeconds(2);
  /** The watch's period and this test's polling after the timeout, on a loaded 2-core machine. */
  private static final Duration SLACK = Duration.ofMillis(400);
  private static final int ROUNDS = 5;

  @Test
  void aKilledLeadersSuccessorStandsForElectionWithinTheElectionTimeout() {
    try (MiniCluster c = MiniCluster.builder().size(3).electionTimeout(ELECTION_TIMEOUT).start()) {
      List<Long> silences = new ArrayList<>();
      long watched = 0;
      for (int round = 0; round < ROUNDS; round++) {
        int lead = c.waitForLeader(Duration.ofSeconds(30));
        c.waitForConvergence(Duration.ofSeconds(30));
        List<RaftNode> survivors = new ArrayList<>();
        for (int i = 0; i < c.size(); i++) {
          if (i != lead) {
            survivors.add(c.member(i).raft());
          }
        }
        long before = survivors.stream().mapToLong(RaftNode::watchedElections).sum();
        // The kill stops the leader's Raft server last, and that stop takes a while after its
        // last heartbeat: measure the silence as the survivors see it, the longest they went
        // without a word from a leader (or a vote request) while following.
        long[] longest = new long[1];
        Thread kill = new Thread(() -> c.kill(lead), "kill-m" + lead);
        kill.start();
        await("a successor of m" + lead).atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(5))
            .until(() -> {
              for (RaftNode n : survivors) {
                long silent = n.leaderSilentFor();
                if (silent != Long.MAX_VALUE) {
                  longest[0] = Math.max(longest[0], silent);
                }
              }
              return !kill.isAlive() && survivors.stream().anyMatch(RaftNode::isLeader);
            });
        silences.add(longest[0]);
        watched += survivors.stream().mapToLong(RaftNode::watchedElections).sum() - before;
        c.restart(lead);
      }
      System.out.printf("longest silence before each successor's election (ms): %s; %d elections called by the watch%n",
          silences, watched);
      assertThat(silences).as("longest silence the survivors saw after each kill (ms)")
          .allSatisfy(ms -> assertThat(ms).isLessThan(ELECTION_TIMEOUT.plus(SLACK).toMillis()));
      assertThat(watched).as("elections the watch called").isPositive();
    }
  }

  @Test
  void theWatchLooksWhenASilenceCouldReachTheTimeoutNotEveryFewMilliseconds() {
    try (MiniCluster c = MiniCluster.builder().size(3).electionTimeout(ELECTION_TIMEOUT).start()) {
      c.waitForLeader(Duration.ofSeconds(30));
      c.waitForConvergence(Duration.ofSeconds(30));
      long[] before = new long[c.size()];
      for (int i = 0; i < c.size(); i++) {
        before[i] = c.member(i).raft().electionWatchLooks();
      }
      long start = System.nanoTime();
      // a quiet cluster: the leader heartbeats, no member needs an election; the watch looks at
      // most every 100 ms on each member, 10 a second (it looked every 10 ms before: 100)
      await("2 s of looks at most 10 a second plus a few").during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(4))
          .pollInterval(Duration.ofMillis(50)).until(() -> {
            double seconds = (System.nanoTime() - start) / 1e9;
            for (int i = 0; i < c.size(); i++) {
              if (c.member(i).raft().electionWatchLooks() - before[i] > seconds * 10 + 5) {
                return false;
              }
            }
            return true;
          });
      for (int i = 0; i < c.size(); i++) {
        assertThat(c.member(i).raft().electionWatchLooks()).as("m%d's election watch still looks", i)
            .isGreaterThan(before[i] + 5);
      }
    }
  }
}
