package io.capstan.kvstore.compat;

import static io.capstan.kvstore.testing.Kv.bs;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.Compare;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.LeaseGrpc;
import io.etcd.jetcd.api.LeaseRevokeRequest;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.TxnRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Bad requests get etcd's gRPC status and message, and the member keeps serving. */
class BadInputTest {
  private static MiniCluster cluster;

  @BeforeAll
  static void start() {
    cluster = MiniCluster.start(1);
  }

  @AfterAll
  static void stop() {
    cluster.close();
  }

  private static void assertStatus(ThrowingCallable call, Status.Code code, String message) {
    assertThatThrownBy(call).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
      assertThat(e.getStatus().getCode()).isEqualTo(code);
      assertThat(e.getStatus().getDescription()).isEqualTo(message);
    });
    // and the member still answers
    assertThat(Kv.put(cluster.channel(0), "still/alive", "yes").getHeader().getRevision()).isPositive();
  }

  @Test
  void requestOverTheSizeLimit() {
    // Over --max-request-bytes (1.5 MiB) but within gRPC's limit (+512 KiB): etcd's own refusal.
    ByteString big = ByteString.copyFrom(new byte[1600 * 1024]);
    assertStatus(() -> Kv.kv(cluster.channel(0)).put(PutRequest.newBuilder().setKey(bs("big")).setValue(big).build()),
        Status.Code.INVALID_ARGUMENT, "etcdserver: request is too large");
    assertThat(Kv.get(cluster.channel(0), "big", false)).isEmpty();
    // Over gRPC's receive limit too: refused by the transport, as etcd's is.
    ByteString huge = ByteString.copyFrom(new byte[3 * 1024 * 1024]);
    assertThatThrownBy(() -> Kv.kv(cluster.channel(0)).put(PutRequest.newBuilder().setKey(bs("huge")).setValue(huge).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED));
    assertThat(Kv.get(cluster.channel(0), "huge", false)).isEmpty();
  }

  @Test
  void tooManyTxnOps() {
    TxnRequest.Builder t = TxnRequest.newBuilder();
    for (int i = 0; i < 129; i++) {
      t.addSuccess(RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(bs("t" + i))));
    }
    assertStatus(() -> Kv.kv(cluster.channel(0)).txn(t.build()),
        Status.Code.INVALID_ARGUMENT, "etcdserver: too many operations in txn request");
  }

  @Test
  void duplicateKeyInTxn() {
    TxnRequest t = TxnRequest.newBuilder()
        .addSuccess(RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(bs("d"))))
        .addSuccess(RequestOp.newBuilder().setRequestDeleteRange(DeleteRangeRequest.newBuilder().setKey(bs("d"))))
        .build();
    assertStatus(() -> Kv.kv(cluster.channel(0)).txn(t),
        Status.Code.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request");
  }

  @Test
  void unknownLease() {
    assertStatus(() -> Kv.kv(cluster.channel(0)).put(PutRequest.newBuilder().setKey(bs("l")).setLease(12345).build()),
        Status.Code.NOT_FOUND, "etcdserver: requested lease not found");
    assertStatus(() -> LeaseGrpc.newBlockingStub(cluster.channel(0)).leaseRevoke(LeaseRevokeRequest.newBuilder().setID(777).build()),
        Status.Code.NOT_FOUND, "etcdserver: requested lease not found");
  }

  @Test
  void futureRevisionAndEmptyKey() {
    assertStatus(() -> Kv.kv(cluster.channel(0)).range(RangeRequest.newBuilder().setKey(bs("a")).setRevision(1_000_000).build()),
        Status.Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision");
    assertStatus(() -> Kv.kv(cluster.channel(0)).range(RangeRequest.newBuilder().build()),
        Status.Code.INVALID_ARGUMENT, "etcdserver: key is not provided");
    assertStatus(() -> Kv.kv(cluster.channel(0)).put(PutRequest.newBuilder().setKey(bs("k")).setIgnoreValue(true).build()),
        Status.Code.INVALID_ARGUMENT, "etcdserver: key not found");
  }

  @Test
  void compareWithoutKey() {
    TxnRequest t = TxnRequest.newBuilder().addCompare(Compare.newBuilder().setTarget(Compare.CompareTarget.VALUE)).build();
    assertStatus(() -> Kv.kv(cluster.channel(0)).txn(t), Status.Code.INVALID_ARGUMENT, "etcdserver: key is not provided");
  }
}
