package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.RangeResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A follower takes Ratis' server-executor steps of an AppendEntries on the peer server's event
 * loop ({@link org.apache.ratis.server.impl.ServerExecutorShortcut}) and its log appends stay in
 * order. Fails with {@code -Dcapstan.raft.inline-server-steps=false} (no steps counted), or when
 * the shortcut cannot be installed on a newer Ratis.
 */
class InlineServerStepsTest {

  @Test
  void followersTakeTheAppendStepsOnTheEventLoopAndKeepEveryWriteInOrder() throws Exception {
    assumeTrue(CommitBroadcast.nettyTransport(),
        "on Ratis' gRPC transport (not the default) AppendEntries are served on gRPC's executor, not an event loop");
    try (MiniCluster c = MiniCluster.start(3)) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      List<Integer> followers = new ArrayList<>(List.of(0, 1, 2));
      followers.remove(Integer.valueOf(lead));
      Kv.put(c.channel(lead), "inline/warm", "v");
      c.waitForConvergence(Duration.ofSeconds(10));
      long[] before = new long[3];
      for (int f : followers) {
        before[f] = c.member(f).raft().inlineServerSteps();
        assertThat(before[f]).as("member %d has the shortcut", f).isGreaterThanOrEqualTo(0);
      }

      // serial puts through a follower: each entry's append is two steps on each follower's event loop
      int serial = 30;
      for (int i = 0; i < serial; i++) {
        Kv.put(c.channel(followers.get(0)), "inline/serial/" + i, "v" + i);
      }
      c.waitForConvergence(Duration.ofSeconds(10));
      for (int f : followers) {
        assertThat(c.member(f).raft().inlineServerSteps() - before[f])
            .as("steps follower %d took on its event loop for %d entries", f, serial)
            .isGreaterThanOrEqualTo(2L * serial);
      }

      // concurrent writes through every member: every member ends with the same keys, values and revisions
      ExecutorService writers = Executors.newFixedThreadPool(6);
      try {
        List<Future<?>> done = new ArrayList<>();
        for (int w = 0; w < 6; w++) {
          int writer = w;
          done.add(writers.submit(() -> {
            for (int i = 0; i < 40; i++) {
              Kv.put(c.channel(writer % 3), "inline/many/" + writer + "/" + (i % 10), "w" + writer + "-" + i);
            }
            return null;
          }));
        }
        for (Future<?> f : done) {
          f.get(60, TimeUnit.SECONDS);
        }
      } finally {
        writers.shutdownNow();
      }
      c.waitForConvergence(Duration.ofSeconds(10));
      List<KeyValue> expected = Kv.prefix(c.channel(lead), "inline/", true).getKvsList();
      assertThat(expected).hasSize(1 + serial + 60);
      for (int f : followers) {
        RangeResponse got = Kv.prefix(c.channel(f), "inline/", true);
        assertThat(got.getKvsList()).as("follower %d's keys", f).isEqualTo(expected);
      }
    }
  }
}
