package io.capstan.kvstore.cluster;

import static org.awaitility.Awaitility.await;
import static io.capstan.kvstore.testing.Kv.prefix;
import static io.capstan.kvstore.testing.Kv.str;
import static org.assertj.core.api.Assertions.assertThat;

import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.RangeResponse;
import io.grpc.ManagedChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** Leader failover under a stream of writes, and recovery of a fully stopped cluster. */
class FailoverTest {

  @Test
  void writesContinueAfterLeaderDiesAndNoAcknowledgedWriteIsLost() throws Exception {
    try (MiniCluster c = MiniCluster.start(3)) {
      List<ManagedChannel> all = List.of(c.channel(0), c.channel(1), c.channel(2));
      Map<String, Long> acked = new ConcurrentHashMap<>();
      AtomicBoolean stop = new AtomicBoolean();
      AtomicInteger count = new AtomicInteger();
      AtomicReference<Throwable> failure = new AtomicReference<>();
      Thread writer = new Thread(() -> {
        try {
          for (int i = 0; !stop.get(); i++) {
            String key = "fo/" + i;
            long rev = Kv.putAnywhere(all, key, "v" + i, 20_000).getHeader().getRevision();
            acked.put(key, rev);
            count.incrementAndGet();
          }
        } catch (Throwable t) {
          failure.set(t);
        }
      });
      writer.start();
      try {
        awaitCount(count, 100, failure);
        int leader = c.leaderIndex();
        c.kill(leader);
        int before = count.get();
        awaitCount(count, before + 100, failure);
        int newLeader = c.waitForLeader(Duration.ofSeconds(20));
        assertThat(newLeader).isNotEqualTo(leader);
      } finally {
        stop.set(true);
        writer.join(30_000);
      }
      assertThat(failure.get()).isNull();
      c.waitForConvergence(Duration.ofSeconds(20));

      // Every acknowledged key is on every surviving member, and the members agree on revisions.
      Map<String, RangeResponse> perMember = new HashMap<>();
      for (int i = 0; i < 3; i++) {
        if (c.isRunning(i)) {
          perMember.put("m" + i, prefix(c.channel(i), "fo/", true));
        }
      }
      assertThat(perMember).hasSize(2);
      List<RangeResponse> views = new ArrayList<>(perMember.values());
      assertThat(views.get(0).getKvsList()).isEqualTo(views.get(1).getKvsList());
      Map<String, KeyValue> byKey = new HashMap<>();
      views.get(0).getKvsList().forEach(kv -> byKey.put(str(kv.getKey()), kv));
      for (Map.Entry<String, Long> e : acked.entrySet()) {
        KeyValue kv = byKey.get(e.getKey());
        assertThat(kv).as("acknowledged key %s", e.getKey()).isNotNull();
        // a retried put may have written the key again after the acknowledged one, never before
        assertThat(kv.getModRevision()).isGreaterThanOrEqualTo(e.getValue());
      }
    }
  }

  @Test
  void fullClusterRestartRecoversEveryWrite() {
    try (MiniCluster c = MiniCluster.start(3)) {
      long lastRev = 0;
      for (int i = 0; i < 50; i++) {
        lastRev = Kv.put(c.channel(i % 3), "rr/" + i, "v" + i).getHeader().getRevision();
      }
      for (int i = 0; i < 3; i++) {
        c.kill(i);
      }
      for (int i = 0; i < 3; i++) {
        c.restart(i);
      }
      c.waitForLeader(Duration.ofSeconds(30));
      RangeResponse r = prefix(c.channel(1), "rr/", false);
      assertThat(r.getCount()).isEqualTo(50);
      assertThat(r.getHeader().getRevision()).isGreaterThanOrEqualTo(lastRev);
      assertThat(Kv.get(c.channel(2), "rr/49", false)).map(kv -> str(kv.getValue())).contains("v49");
      // the restarted cluster takes new writes at the next revision
      assertThat(Kv.put(c.channel(0), "rr/new", "x").getHeader().getRevision()).isEqualTo(lastRev + 1);
    }
  }

  private static void awaitCount(AtomicInteger count, int target, AtomicReference<Throwable> failure) {
    await(target + " acknowledged writes").atMost(Duration.ofSeconds(60)).until(() -> {
      if (failure.get() != null) {
        throw new AssertionError("writer failed", failure.get());
      }
      return count.get() >= target;
    });
  }
}
