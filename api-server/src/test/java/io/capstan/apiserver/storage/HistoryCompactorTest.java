package io.capstan.apiserver.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import org.junit.jupiter.api.Test;

/**
 * kube-apiserver's compaction among replicas: one compare-and-swap winner a round, which compacts
 * to the revision recorded the round before; on Capstan's kvstore and on a real etcd alike.
 */
class HistoryCompactorTest {
  @Test
  void replicasCompactOnceARoundToTheRevisionOfTheRoundBeforeOnTheKvstore() {
    try (MiniCluster kvstore = MiniCluster.start(1)) {
      twoReplicas(kvstore.endpoint(0));
    }
  }

  @Test
  void replicasCompactOnceARoundToTheRevisionOfTheRoundBeforeOnEtcd() throws Exception {
    try (EtcdProcess etcd = new EtcdProcess()) {
      twoReplicas(etcd.endpoint());
    }
  }

  @Test
  void anApiServerCompactsOnItsOwnEveryInterval() throws Exception {
    try (MiniCluster kvstore = MiniCluster.start(1);
        EtcdClient etcd = new EtcdClient(kvstore.endpoint(0));
        io.capstan.apiserver.ApiServer server = io.capstan.apiserver.ApiServer.start(kvstore.endpoint(0), "127.0.0.1", 0, 0,
            100, java.time.Duration.ofMillis(300))) {
      long written = put(etcd, "v1");
      put(etcd, "v2");
      // the round after the one that recorded a revision past the first put compacts beyond it
      org.awaitility.Awaitility.await("the api-server compacted past revision " + written)
          .atMost(java.time.Duration.ofSeconds(20)).pollInterval(java.time.Duration.ofMillis(50))
          .until(() -> kvstore.member(0).store().compactRevision() > written);
      assertCompacted(etcd, written);
      assertThat(etcd.call(ch -> KVGrpc.newBlockingStub(ch).range(RangeRequest.newBuilder()
          .setKey(ByteString.copyFromUtf8("hc/k")).build())).getKvs(0).getValue().toStringUtf8()).isEqualTo("v2");
    }
  }

  private static void twoReplicas(String endpoint) {
    try (EtcdClient etcd = new EtcdClient(endpoint)) {
      HistoryCompactor a = new HistoryCompactor(etcd);
      HistoryCompactor b = new HistoryCompactor(etcd);
      long first = put(etcd, "v1");
      // round 1: a wins and only records (no compaction on bootstrap); b loses
      assertThat(a.round()).isZero();
      long recordedByA = first + 1; // a's put of compact_rev_key
      assertThat(b.round()).isZero();
      long second = put(etcd, "v2");
      // round 2: b lost last time, so it expects the version a left: it wins, and compacts to what it saw when it lost
      assertThat(b.round()).isEqualTo(recordedByA);
      assertThat(a.round()).as("a expected an older version of compact_rev_key: it lost").isZero();
      assertCompacted(etcd, recordedByA - 1);
      assertThat(valueAt(etcd, second)).isEqualTo("v2");
      assertThat(a.compactions() + b.compactions()).isEqualTo(1);
      // round 3: a now knows the version b left and wins, compacting to the revision it saw losing round 2
      put(etcd, "v3");
      long aSawInRound2 = second + 1;
      assertThat(a.round()).isEqualTo(aSawInRound2);
      assertCompacted(etcd, aSawInRound2 - 1);
    }
  }

  private static long put(EtcdClient etcd, String value) {
    return etcd.call(ch -> KVGrpc.newBlockingStub(ch).put(PutRequest.newBuilder()
        .setKey(ByteString.copyFromUtf8("hc/k")).setValue(ByteString.copyFromUtf8(value)).build())).getHeader().getRevision();
  }

  private static String valueAt(EtcdClient etcd, long revision) {
    return etcd.call(ch -> KVGrpc.newBlockingStub(ch).range(RangeRequest.newBuilder()
        .setKey(ByteString.copyFromUtf8("hc/k")).setRevision(revision).build())).getKvs(0).getValue().toStringUtf8();
  }

  private static void assertCompacted(EtcdClient etcd, long revision) {
    assertThatThrownBy(() -> valueAt(etcd, revision)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
      assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.OUT_OF_RANGE);
      assertThat(e.getStatus().getDescription()).isEqualTo("etcdserver: mvcc: required revision has been compacted");
    });
  }
}
