package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.codahale.metrics.Metric;
import com.codahale.metrics.MetricRegistry;
import com.codahale.metrics.Timer;
import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * Each member's registry (its {@code /metrics}) carries its own Ratis metrics: the three members of
 * a MiniCluster share Ratis' process-wide registries, so a member must pick out its own.
 */
class RatisMetricsTest {

  @Test
  void eachMemberPublishesItsOwnRaftLogAndReplicationTimings() {
    try (MiniCluster c = MiniCluster.start(3)) {
      int leader = c.waitForLeader(Duration.ofSeconds(20));
      for (int i = 0; i < 20; i++) {
        Kv.put(c.channel(leader), "rm/" + i, "v");
      }
      int follower = (leader + 1) % 3;
      MetricRegistry lm = c.member(leader).metrics();
      MetricRegistry fm = c.member(follower).metrics();
      // Registries Ratis creates at election are picked up by the periodic sync (10 s).
      await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
        assertThat(timer(lm, "ratis_server_clientwriterequest").getCount()).isGreaterThanOrEqualTo(20);
        assertThat(timer(fm, "ratis_server_follower_append_entry_latency").getCount()).isGreaterThanOrEqualTo(1);
        assertThat(timer(fm, "ratis_log_worker_flushtime").getCount()).isGreaterThanOrEqualTo(1);
        // the gRPC appender times its requests; Netty's has only Ratis' common appender gauges
        String appender = CommitBroadcast.NETTY ? "ratis_log_appender_follower_" : "ratis_grpc_log_appender_";
        String timing = CommitBroadcast.NETTY ? "_rpc_response_time" : "_latency";
        assertThat(lm.getMetrics().keySet()).anyMatch(n -> n.startsWith(appender) && n.endsWith(timing));
      });
      // The follower took none of the 20 client writes (at most the members' own attribute
      // entries, which Ratis' client may send it first and it refuses as not the leader) and the
      // leader was sent no entries: a member that showed another's Ratis metrics would fail here.
      assertThat(timer(fm, "ratis_server_clientwriterequest").getCount()).isLessThan(20);
      Metric leaderAppends = lm.getMetrics().get("ratis_server_follower_append_entry_latency");
      assertThat(leaderAppends == null ? 0 : ((Timer) leaderAppends).getCount()).isZero();
      assertThat(timer(lm, "ratis_log_worker_flushtime").getSnapshot().getMedian()).isPositive();
      assertThat(lm.getMetrics().keySet()).allMatch(n -> n.matches("[a-z0-9_]+"));
    }
  }

  private static Timer timer(MetricRegistry m, String name) {
    Metric metric = m.getMetrics().get(name);
    assertThat(metric).as(name + " in " + m.getNames()).isInstanceOf(Timer.class);
    return (Timer) metric;
  }

  @Test
  void namesDropTheMemberIdAndKeepTheComponent() {
    assertThat(RatisMetrics.name("log_worker", "ratis.log_worker.m0@group-ABC.flushTime", "m0@group-ABC"))
        .isEqualTo("ratis_log_worker_flushtime");
    assertThat(RatisMetrics.name("log_appender", "m0_latency", "m1@group-ABC")).isEqualTo("ratis_log_appender_m0_latency");
    // a member whose name occurs inside metric names keeps them whole
    assertThat(RatisMetrics.name("log_worker", "ratis.log_worker.log@group-ABC.flushTime", "log@group-ABC"))
        .isEqualTo("ratis_log_worker_flushtime");
  }
}
