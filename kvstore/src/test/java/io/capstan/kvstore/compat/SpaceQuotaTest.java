package io.capstan.kvstore.compat;

import static io.capstan.kvstore.testing.Kv.bs;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.AlarmRequest;
import io.etcd.jetcd.api.AlarmType;
import io.etcd.jetcd.api.CompactionRequest;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.LeaseGrpc;
import io.etcd.jetcd.api.MaintenanceGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.TxnRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Test;

/**
 * The space quota ({@code --quota-backend-bytes}): the history lives in memory, so a member that
 * only grows would end in an OutOfMemoryError. Over the quota, writes that add data fail as etcd's
 * do, reads and deletes go on, the NOSPACE alarm shows, and a compaction makes room again.
 */
class SpaceQuotaTest {
  private static final ByteString VALUE = ByteString.copyFrom(new byte[4096]);

  private static void assertNoSpace(ThrowingCallable call) {
    assertThatThrownBy(call).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
      assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
      assertThat(e.getStatus().getDescription()).isEqualTo("etcdserver: mvcc: database space exceeded");
    });
  }

  @Test
  void writesThatAddDataAreRefusedOverTheQuotaUntilACompactionFreesSpace() {
    try (MiniCluster c = MiniCluster.builder().size(1).quotaBackendBytes(64 * 1024).start()) {
      var kv = Kv.kv(c.channel(0));
      int accepted = 0;
      long lastRevision = 0;
      // one key rewritten: its history grows until the quota stops it
      while (true) {
        try {
          lastRevision = kv.put(PutRequest.newBuilder().setKey(bs("q/k")).setValue(VALUE).build()).getHeader().getRevision();
          accepted++;
        } catch (StatusRuntimeException e) {
          assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
          assertThat(e.getStatus().getDescription()).isEqualTo("etcdserver: mvcc: database space exceeded");
          break;
        }
        assertThat(accepted).as("the quota never stopped writes").isLessThan(100);
      }
      assertThat(accepted).isBetween(10, 17);

      // txns with puts, nested ones too, and lease grants are refused; nothing was written
      assertNoSpace(() -> kv.txn(TxnRequest.newBuilder().addSuccess(RequestOp.newBuilder()
          .setRequestTxn(TxnRequest.newBuilder().addSuccess(RequestOp.newBuilder()
              .setRequestPut(PutRequest.newBuilder().setKey(bs("q/nested")).setValue(VALUE))))).build()));
      // small puts still fit for a while; once they do not, neither does a lease
      int small = 0;
      while (true) {
        try {
          lastRevision = kv.put(PutRequest.newBuilder().setKey(bs("q/s")).setValue(bs("1")).build()).getHeader().getRevision();
          small++;
        } catch (StatusRuntimeException e) {
          assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
          break;
        }
        assertThat(small).as("the quota never stopped small writes").isLessThan(100);
      }
      assertNoSpace(() -> LeaseGrpc.newBlockingStub(c.channel(0)).leaseGrant(LeaseGrantRequest.newBuilder().setTTL(60).build()));
      assertThat(Kv.get(c.channel(0), "q/nested", false)).isEmpty();
      var maintenance = MaintenanceGrpc.newBlockingStub(c.channel(0));
      assertThat(maintenance.alarm(AlarmRequest.newBuilder().setAction(AlarmRequest.AlarmAction.GET).build()).getAlarmsList())
          .singleElement().satisfies(a -> assertThat(a.getAlarm()).isEqualTo(AlarmType.NOSPACE));

      // reads, txns without puts and deletes still work
      assertThat(Kv.get(c.channel(0), "q/k", false)).isPresent();
      kv.deleteRange(DeleteRangeRequest.newBuilder().setKey(bs("q/")).setRangeEnd(Kv.prefixEnd("q/")).build());

      // compacting away the history makes room: writes resume (once the compactor has trimmed the
      // histories, in the background: milliseconds here) and the alarm clears
      kv.compact(CompactionRequest.newBuilder().setRevision(lastRevision + 1).build());
      long after = org.awaitility.Awaitility.await("a put after the compaction").atMost(java.time.Duration.ofSeconds(10))
          .pollInterval(java.time.Duration.ofMillis(20)).ignoreExceptionsMatching(e -> e instanceof StatusRuntimeException
              && ((StatusRuntimeException) e).getStatus().getDescription().equals("etcdserver: mvcc: database space exceeded"))
          .until(() -> kv.put(PutRequest.newBuilder().setKey(bs("q/after")).setValue(VALUE).build()).getHeader().getRevision(),
              r -> r > 0);
      assertThat(after).isEqualTo(lastRevision + 2);
      assertThat(maintenance.alarm(AlarmRequest.newBuilder().setAction(AlarmRequest.AlarmAction.GET).build()).getAlarmsCount())
          .isZero();
    }
  }
}
