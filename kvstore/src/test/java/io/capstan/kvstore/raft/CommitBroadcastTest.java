package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/**
 * Followers apply a write without waiting for a later entry or a heartbeat. The election timeout is
 * long here (heartbeats every 1 s), so a follower that learned commits only from the next
 * AppendEntries would show a lone write after up to a second; every write must show on both
 * followers well before that. Fails with Ratis' commit-metadata entries off and no {@link
 * CommitBroadcast}.
 */
class CommitBroadcastTest {

  @Test
  void aLoneWriteIsAppliedOnEveryFollowerPromptly() {
    try (MiniCluster c = MiniCluster.builder().electionTimeout(Duration.ofSeconds(4)).start()) {
      int leader = c.waitForLeader(Duration.ofSeconds(30));
      List<Integer> followers = new ArrayList<>(List.of(0, 1, 2));
      followers.remove(Integer.valueOf(leader));
      Kv.put(c.channel(leader), "cb/warm", "v"); // the first write of a term may wait for the leader to be ready
      // Each write waits until both followers show the one before, so no later entry is in flight
      // that could carry its commit index to them.
      for (int i = 0; i < 5; i++) {
        String key = "cb/" + i;
        Kv.put(c.channel(leader), key, "v" + i);
        long start = System.nanoTime();
        for (int f : followers) {
          while (Kv.get(c.channel(f), key, true).isEmpty()) {
            assertThat(Duration.ofNanos(System.nanoTime() - start))
                .as("write %d not yet applied on follower %d", i, f).isLessThan(Duration.ofMillis(400));
            Thread.onSpinWait();
          }
        }
      }
    }
  }

  @Test
  void anUnknownTransportIsRefusedByName() {
    assertThat(CommitBroadcast.netty("netty")).isTrue();
    assertThat(CommitBroadcast.netty("grpc")).isFalse();
    assertThatThrownBy(() -> CommitBroadcast.netty("udp"))
        .hasMessage("capstan.raft.transport must be netty or grpc, not \"udp\"");
  }

  /** The leader reports a follower that stopped answering, and reports it back once it answers. */
  @Test
  void theLeaderReportsASilentFollowerAndItsReturn() {
    try (MiniCluster c = MiniCluster.start(3)) {
      int leader = c.waitForLeader(Duration.ofSeconds(30));
      int follower = (leader + 1) % 3;
      Kv.put(c.channel(leader), "sf/1", "v");
      assertThat(c.member(leader).raft().silentFollowers()).isZero();
      c.kill(follower);
      Awaitility.await("the leader reports the killed follower").atMost(Duration.ofSeconds(10))
          .until(() -> c.member(leader).raft().silentFollowers() == 1);
      assertThat(c.member((leader + 2) % 3).raft().silentFollowers()).as("a follower reports nothing").isZero();
      c.restart(follower);
      Awaitility.await("the leader sees the follower answer again").atMost(Duration.ofSeconds(60))
          .until(() -> c.member(leader).raft().silentFollowers() == 0);
    }
  }
}
