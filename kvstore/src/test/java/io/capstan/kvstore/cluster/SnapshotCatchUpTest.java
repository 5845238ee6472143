package io.capstan.kvstore.cluster;

import static org.awaitility.Awaitility.await;
import static org.assertj.core.api.Assertions.assertThat;

import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.RangeResponse;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** A member that was down while the leader snapshotted and purged its log catches up by snapshot. */
class SnapshotCatchUpTest {

  @Test
  void laggingMemberInstallsLeaderSnapshotAndConverges() {
    try (MiniCluster c = MiniCluster.builder().size(3).snapshotCount(40).logSegmentBytes(8 * 1024).start()) {
      int leader = c.leaderIndex();
      int follower = (leader + 1) % 3;
      int other = (leader + 2) % 3;
      Kv.put(c.channel(leader), "cu/before", "1");
      c.waitForConvergence(Duration.ofSeconds(10));
      c.kill(follower);

      String value = "x".repeat(200);
      for (int i = 0; i < 400; i++) {
        Kv.put(c.channel(i % 2 == 0 ? leader : other), "cu/" + i, value + i);
      }
      long leaderFirstIndex = waitForPurge(c, leader);

      c.restart(follower);
      // 90 s: the leader reconnects to a member it lost with gRPC's backoff (seconds, growing)
      c.waitForConvergence(Duration.ofSeconds(90));
      assertThat(c.member(follower).raft().snapshotsInstalled())
          .as("follower caught up through the leader's snapshot (leader log starts at %d)", leaderFirstIndex)
          .isPositive();
      RangeResponse onFollower = Kv.prefix(c.channel(follower), "cu/", true);
      RangeResponse onLeader = Kv.prefix(c.channel(leader), "cu/", true);
      assertThat(onFollower.getCount()).isEqualTo(401);
      assertThat(onFollower.getKvsList()).isEqualTo(onLeader.getKvsList());
      assertThat(onFollower.getHeader().getRevision()).isEqualTo(onLeader.getHeader().getRevision());
      // and it keeps applying new writes normally after the install
      long rev = Kv.put(c.channel(leader), "cu/after", "2").getHeader().getRevision();
      c.waitForConvergence(Duration.ofSeconds(10));
      assertThat(Kv.get(c.channel(follower), "cu/after", true)).get()
          .satisfies(kv -> assertThat(kv.getModRevision()).isEqualTo(rev));
    }
  }

  /** Waits until the leader's log no longer starts at its beginning; returns its first index. */
  private static long waitForPurge(MiniCluster c, int leader) {
    return await("the leader purges its log").atMost(Duration.ofSeconds(20))
        .until(() -> c.member(leader).raft().firstLogIndex(), first -> first > 1);
  }
}
