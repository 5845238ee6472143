package io.capstan.kvstore.cluster;

import static org.awaitility.Awaitility.await;
import static io.capstan.kvstore.testing.Kv.bs;
import static io.capstan.kvstore.testing.Kv.prefixEnd;
import static io.capstan.kvstore.testing.Kv.str;
import static org.assertj.core.api.Assertions.assertThat;

import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.capstan.kvstore.testing.WatchClient;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.LeaseGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.WatchCreateRequest;
import io.grpc.ManagedChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Leases and watches keep their guarantees when the member serving them or the leader dies. */
class LeaseAndWatchFailoverTest {

  @Test
  void leaseExpiresUnderNewLeaderAndWatchSeesDelete() throws Exception {
    try (MiniCluster c = MiniCluster.start(3)) {
      int leader = c.leaderIndex();
      int survivor = (leader + 1) % 3;
      long id = LeaseGrpc.newBlockingStub(c.channel(survivor)).withDeadlineAfter(10, TimeUnit.SECONDS)
          .leaseGrant(LeaseGrantRequest.newBuilder().setTTL(3).build()).getID();
      long putRev = Kv.kv(c.channel(survivor)).put(PutRequest.newBuilder().setKey(bs("lease/key"))
          .setValue(bs("v")).setLease(id).build()).getHeader().getRevision();
      try (WatchClient w = new WatchClient(c.channel(survivor))) {
        w.create(WatchCreateRequest.newBuilder().setKey(bs("lease/key")).setStartRevision(putRev + 1).build());
        w.await(r -> r.getCreated(), 10_000);
        c.kill(leader);
        c.waitForLeader(Duration.ofSeconds(20));

        // The new leader expires the lease (its clock restarted at election: TTL counts from then).
        Event delete = w.await(r -> r.getEventsCount() > 0, 30_000).getEvents(0);
        assertThat(delete.getType()).isEqualTo(Event.EventType.DELETE);
        assertThat(str(delete.getKv().getKey())).isEqualTo("lease/key");
      }
      for (int i = 0; i < 3; i++) {
        if (c.isRunning(i)) {
          int m = i;
          await("key gone on member " + m).atMost(Duration.ofSeconds(10))
              .until(() -> Kv.get(c.channel(m), "lease/key", true).isEmpty());
        }
      }
    }
  }

  @Test
  void watchResumesOnAnotherMemberWithoutGapsOrDuplicates() throws Exception {
    try (MiniCluster c = MiniCluster.start(3)) {
      int leader = c.leaderIndex();
      int watched = (leader + 1) % 3;
      int other = (leader + 2) % 3;
      List<ManagedChannel> writers = List.of(c.channel(leader), c.channel(other));
      long start = Kv.put(c.channel(leader), "start", "x").getHeader().getRevision() + 1;

      List<Event> seen = new ArrayList<>();
      try (WatchClient w = new WatchClient(c.channel(watched))) {
        w.create(WatchCreateRequest.newBuilder().setKey(bs("wr/")).setRangeEnd(prefixEnd("wr/"))
            .setStartRevision(start).build());
        w.await(r -> r.getCreated(), 10_000);
        for (int i = 0; i < 100; i++) {
          Kv.putAnywhere(writers, "wr/" + i, "v" + i, 20_000);
        }
        seen.addAll(w.collectEvents(l -> l.size() >= 50, 20_000));
        c.kill(watched);
      }
      assertThat(seen).isNotEmpty();
      for (int i = 100; i < 200; i++) {
        Kv.putAnywhere(writers, "wr/" + i, "v" + i, 20_000);
      }
      long resumeFrom = seen.get(seen.size() - 1).getKv().getModRevision() + 1;
      try (WatchClient w = new WatchClient(c.channel(other))) {
        w.create(WatchCreateRequest.newBuilder().setKey(bs("wr/")).setRangeEnd(prefixEnd("wr/"))
            .setStartRevision(resumeFrom).build());
        seen.addAll(w.collectEvents(l -> l.size() + lastSeenSize(seen) >= 200 && containsKey(seen, l, "wr/199"), 30_000));
      }

      List<Long> revisions = seen.stream().map(e -> e.getKv().getModRevision()).toList();
      for (int i = 1; i < revisions.size(); i++) {
        assertThat(revisions.get(i)).as("events strictly ordered, no duplicates").isGreaterThan(revisions.get(i - 1));
      }
      for (KeyValue kv : Kv.prefix(c.channel(other), "wr/", false).getKvsList()) {
        assertThat(revisions).as("event for %s", str(kv.getKey())).contains(kv.getModRevision());
      }
      assertThat(revisions.get(0)).isEqualTo(start);
    }
  }

  private static int lastSeenSize(List<Event> seen) {
    return seen.size();
  }

  private static boolean containsKey(List<Event> before, List<Event> now, String key) {
    return now.stream().anyMatch(e -> str(e.getKv().getKey()).equals(key))
        || before.stream().anyMatch(e -> str(e.getKv().getKey()).equals(key));
  }
}
