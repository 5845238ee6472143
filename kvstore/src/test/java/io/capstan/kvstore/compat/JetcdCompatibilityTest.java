package io.capstan.kvstore.compat;

import static org.awaitility.Awaitility.await;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KV;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.Watch;
import io.etcd.jetcd.kv.GetResponse;
import io.etcd.jetcd.kv.TxnResponse;
import io.etcd.jetcd.lease.LeaseTimeToLiveResponse;
import io.etcd.jetcd.maintenance.StatusResponse;
import io.etcd.jetcd.op.Cmp;
import io.etcd.jetcd.op.CmpTarget;
import io.etcd.jetcd.op.Op;
import io.etcd.jetcd.options.DeleteOption;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.LeaseOption;
import io.etcd.jetcd.options.PutOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.watch.WatchEvent;
import java.time.Duration;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The stock jetcd client against a 3-member cluster: what a Java etcd user would do. */
class JetcdCompatibilityTest {
  private static MiniCluster cluster;
  private static Client client;
  private static KV kv;

  @BeforeAll
  static void start() {
    cluster = MiniCluster.start(3);
    client = Client.builder().endpoints(cluster.endpoints().toArray(String[]::new)).build();
    kv = client.getKVClient();
  }

  @AfterAll
  static void stop() {
    try {
      if (client != null) {
        client.close();
      }
    } finally {
      cluster.close();
    }
  }

  static ByteSequence b(String s) {
    return ByteSequence.from(s, StandardCharsets.UTF_8);
  }

  static String s(ByteSequence b) {
    return b.toString(StandardCharsets.UTF_8);
  }

  @Test
  void putGetDeleteWithPrefixLimitSortAndRevision() throws Exception {
    long r1 = kv.put(b("jc/a"), b("1")).get().getHeader().getRevision();
    kv.put(b("jc/b"), b("2")).get();
    kv.put(b("jc/c"), b("3")).get();
    var prev = kv.put(b("jc/a"), b("1b"), PutOption.builder().withPrevKV().build()).get();
    assertThat(s(prev.getPrevKv().getValue())).isEqualTo("1");

    GetResponse all = kv.get(b("jc/"), GetOption.builder().isPrefix(true).build()).get();
    assertThat(all.getKvs()).extracting(k -> s(k.getKey())).containsExactly("jc/a", "jc/b", "jc/c");
    KeyValue a = all.getKvs().get(0);
    assertThat(a.getVersion()).isEqualTo(2);
    assertThat(a.getCreateRevision()).isEqualTo(r1);

    GetResponse limited = kv.get(b("jc/"), GetOption.builder().isPrefix(true).withLimit(2)
        .withSortField(GetOption.SortTarget.KEY).withSortOrder(GetOption.SortOrder.DESCEND).build()).get();
    assertThat(limited.getKvs()).extracting(k -> s(k.getKey())).containsExactly("jc/c", "jc/b");
    assertThat(limited.getCount()).isEqualTo(3);
    assertThat(limited.isMore()).isTrue();

    GetResponse old = kv.get(b("jc/a"), GetOption.builder().withRevision(r1).build()).get();
    assertThat(s(old.getKvs().get(0).getValue())).isEqualTo("1");

    long deleted = kv.delete(b("jc/"), DeleteOption.builder().isPrefix(true).build()).get().getDeleted();
    assertThat(deleted).isEqualTo(3);
    assertThat(kv.get(b("jc/a")).get().getKvs()).isEmpty();
  }

  @Test
  void txnComparesChooseTheBranchInOneRevision() throws Exception {
    long rev = kv.put(b("tx/k"), b("v1")).get().getHeader().getRevision();
    TxnResponse t = kv.txn()
        .If(new Cmp(b("tx/k"), Cmp.Op.EQUAL, CmpTarget.value(b("v1"))),
            new Cmp(b("tx/k"), Cmp.Op.EQUAL, CmpTarget.modRevision(rev)))
        .Then(Op.put(b("tx/k"), b("v2"), PutOption.DEFAULT), Op.put(b("tx/other"), b("o"), PutOption.DEFAULT))
        .Else(Op.put(b("tx/k"), b("lost"), PutOption.DEFAULT))
        .commit().get();
    assertThat(t.isSucceeded()).isTrue();
    assertThat(t.getHeader().getRevision()).isEqualTo(rev + 1);
    assertThat(kv.get(b("tx/other")).get().getKvs().get(0).getModRevision()).isEqualTo(rev + 1);

    TxnResponse f = kv.txn().If(new Cmp(b("tx/k"), Cmp.Op.GREATER, CmpTarget.version(5)))
        .Then(Op.put(b("tx/k"), b("no"), PutOption.DEFAULT))
        .Else(Op.get(b("tx/k"), GetOption.DEFAULT)).commit().get();
    assertThat(f.isSucceeded()).isFalse();
    assertThat(s(f.getGetResponses().get(0).getKvs().get(0).getValue())).isEqualTo("v2");
  }

  @Test
  void compactedRevisionIsRefusedWithEtcdsError() throws Exception {
    long r1 = kv.put(b("cp/k"), b("1")).get().getHeader().getRevision();
    long r2 = kv.put(b("cp/k"), b("2")).get().getHeader().getRevision();
    client.getKVClient().compact(r2).get();
    assertThatThrownBy(() -> kv.get(b("cp/k"), GetOption.builder().withRevision(r1).build()).get())
        .isInstanceOf(ExecutionException.class)
        .hasMessageContaining("required revision has been compacted");
    assertThat(s(kv.get(b("cp/k"), GetOption.builder().withRevision(r2).build()).get().getKvs().get(0).getValue()))
        .isEqualTo("2");
  }

  @Test
  void watchDeliversEventsWithPrevKvFromAPastRevision() throws Exception {
    long start = kv.put(b("wt/k"), b("1")).get().getHeader().getRevision();
    kv.put(b("wt/k"), b("2")).get();
    kv.delete(b("wt/k")).get();
    List<WatchEvent> events = new CopyOnWriteArrayList<>();
    try (Watch.Watcher w = client.getWatchClient().watch(b("wt/"),
        WatchOption.builder().isPrefix(true).withRevision(start).withPrevKV(true).build(),
        resp -> events.addAll(resp.getEvents()))) {
      await().atMost(Duration.ofSeconds(10)).until(() -> events.size() >= 3);
    }
    assertThat(events).extracting(WatchEvent::getEventType)
        .containsExactly(WatchEvent.EventType.PUT, WatchEvent.EventType.PUT, WatchEvent.EventType.DELETE);
    assertThat(s(events.get(1).getPrevKV().getValue())).isEqualTo("1");
    assertThat(s(events.get(2).getPrevKV().getValue())).isEqualTo("2");
  }

  @Test
  void leaseGrantKeepAliveTimeToLiveRevoke() throws Exception {
    var lease = client.getLeaseClient();
    long id = lease.grant(30).get().getID();
    kv.put(b("ls/k"), b("v"), PutOption.builder().withLeaseId(id).build()).get();
    assertThat(lease.keepAliveOnce(id).get().getTTL()).isEqualTo(30);
    LeaseTimeToLiveResponse ttl = lease.timeToLive(id, LeaseOption.builder().withAttachedKeys().build()).get();
    assertThat(ttl.getGrantedTTL()).isEqualTo(30);
    assertThat(ttl.getTTL()).isBetween(1L, 30L);
    assertThat(ttl.getKeys()).extracting(JetcdCompatibilityTest::s).containsExactly("ls/k");
    var kaResponses = new java.util.concurrent.LinkedBlockingQueue<io.etcd.jetcd.lease.LeaseKeepAliveResponse>();
    try (var ka = lease.keepAlive(id, new io.grpc.stub.StreamObserver<>() {
      @Override public void onNext(io.etcd.jetcd.lease.LeaseKeepAliveResponse r) { kaResponses.add(r); }
      @Override public void onError(Throwable t) {}
      @Override public void onCompleted() {}
    })) {
      var first = kaResponses.poll(10, TimeUnit.SECONDS);
      assertThat(first).isNotNull();
      assertThat(first.getID()).isEqualTo(id);
      assertThat(first.getTTL()).isEqualTo(30);
    }
    lease.revoke(id).get();
    assertThat(kv.get(b("ls/k")).get().getKvs()).isEmpty();
    assertThatThrownBy(() -> lease.keepAliveOnce(id).get(10, TimeUnit.SECONDS))
        .hasMessageContaining("requested lease not found");
  }

  @Test
  void clusterAndMaintenance() throws Exception {
    var members = client.getClusterClient().listMember().get().getMembers();
    assertThat(members).hasSize(3);
    assertThat(members).extracting(m -> m.getName()).containsExactlyInAnyOrder("m0", "m1", "m2");
    StatusResponse st = client.getMaintenanceClient().statusMember(cluster.endpoint(0)).get();
    assertThat(st.getVersion()).startsWith("3.");
    assertThat(st.getLeader()).isNotZero();
    assertThat(st.getRaftIndex()).isPositive();
    assertThat(st.getRaftTerm()).isPositive();
    assertThat(st.getDbSize()).isPositive();
  }
}
