package io.capstan.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.kvstore.AutoCompaction;
import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.RangeRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.List;
import java.util.stream.IntStream;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/**
 * {@code --auto-compaction-mode revision}: the leader, and only it, compacts the history to the
 * last N revisions through the Raft log, every member applies it, and a new leader goes on after
 * the old one dies.
 */
class AutoCompactionTest {
  private static final long KEEP = 10;

  @Test
  void theLeaderCompactsToTheLastRevisionsAndANewLeaderGoesOn() {
    try (MiniCluster c = MiniCluster.builder().size(3)
        .autoCompaction(AutoCompaction.revisions(KEEP, Duration.ofMillis(200))).start()) {
      int leader = c.waitForLeader(Duration.ofSeconds(20));
      List<io.grpc.ManagedChannel> all = IntStream.range(0, 3).mapToObj(c::channel).toList();
      long last = 0;
      for (int i = 0; i < 50; i++) {
        last = Kv.putAnywhere(all, "ac/k" + (i % 5), "v" + i, 10_000).getHeader().getRevision();
      }
      awaitCompactedTo(c, last - KEEP);
      // history below is gone on every member, history kept is still readable
      for (int i = 0; i < 3; i++) {
        long at = last - KEEP - 1;
        var kv = Kv.kv(c.channel(i));
        assertThatThrownBy(() -> kv.range(RangeRequest.newBuilder().setKey(Kv.bs("ac/k0")).setRevision(at).build()))
            .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.OUT_OF_RANGE);
              assertThat(e.getStatus().getDescription()).isEqualTo("etcdserver: mvcc: required revision has been compacted");
            });
        assertThat(kv.range(RangeRequest.newBuilder().setKey(Kv.bs("ac/k0")).setRevision(last - KEEP).build()).getCount())
            .isEqualTo(1);
      }
      assertThat(autoCompactions(c, leader)).isPositive();
      for (int i = 0; i < 3; i++) {
        if (i != leader) {
          assertThat(autoCompactions(c, i)).as("follower %d proposed a compaction", i).isZero();
        }
      }

      c.kill(leader);
      c.waitForLeader(Duration.ofSeconds(20));
      List<io.grpc.ManagedChannel> left = IntStream.range(0, 3).filter(c::isRunning).mapToObj(c::channel).toList();
      for (int i = 0; i < 30; i++) {
        last = Kv.putAnywhere(left, "ac/k" + (i % 5), "w" + i, 10_000).getHeader().getRevision();
      }
      awaitCompactedTo(c, last - KEEP);
    }
  }

  private static long autoCompactions(MiniCluster c, int i) {
    return ((Number) c.member(i).metrics().getGauges().get("kvstore_auto_compactions_total").getValue()).longValue();
  }

  private static void awaitCompactedTo(MiniCluster c, long revision) {
    Awaitility.await("every running member compacted to " + revision).atMost(Duration.ofSeconds(20))
        .pollInterval(Duration.ofMillis(20))
        .until(() -> IntStream.range(0, c.size()).filter(c::isRunning)
            .allMatch(i -> c.member(i).store().compactRevision() == revision));
  }
}
