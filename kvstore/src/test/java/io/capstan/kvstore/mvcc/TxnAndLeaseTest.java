package io.capstan.kvstore.mvcc;

import static io.capstan.kvstore.mvcc.StateMachineHarness.bs;
import static io.capstan.kvstore.mvcc.StateMachineHarness.str;
import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.CommandBatch;
import io.capstan.kvstore.proto.LeaseExpire;
import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.Compare;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.LeaseRevokeRequest;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.TxnRequest;
import io.etcd.jetcd.api.TxnResponse;
import io.grpc.Status;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Txn compares, branches and limits, and leases, applied as the Raft log applies them. */
class TxnAndLeaseTest {
  private final StateMachineHarness sm = new StateMachineHarness();

  private static RequestOp putOp(String k, String v) {
    return RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(bs(k)).setValue(bs(v))).build();
  }

  private static RequestOp getOp(String k) {
    return RequestOp.newBuilder().setRequestRange(RangeRequest.newBuilder().setKey(bs(k))).build();
  }

  private boolean compare(Compare c) {
    TxnResponse r = sm.txn(TxnRequest.newBuilder().addCompare(c).build());
    return r.getSucceeded();
  }

  @ParameterizedTest(name = "{0} {1} {2} -> {3}")
  @CsvSource({
      "VERSION, EQUAL, 2, true", "VERSION, GREATER, 1, true", "VERSION, LESS, 2, false", "VERSION, NOT_EQUAL, 2, false",
      "CREATE, EQUAL, 2, true", "CREATE, GREATER, 2, false", "CREATE, LESS, 3, true",
      "MOD, EQUAL, 3, true", "MOD, LESS, 3, false", "MOD, NOT_EQUAL, 2, true",
      "LEASE, EQUAL, 0, true", "LEASE, GREATER, 0, false"})
  void numericCompares(String target, Compare.CompareResult result, long operand, boolean expected) {
    sm.put("k", "a"); // rev 2
    sm.put("k", "b"); // rev 3, version 2
    Compare.Builder c = Compare.newBuilder().setKey(bs("k")).setResult(result);
    switch (target) {
      case "VERSION" -> c.setTarget(Compare.CompareTarget.VERSION).setVersion(operand);
      case "CREATE" -> c.setTarget(Compare.CompareTarget.CREATE).setCreateRevision(operand);
      case "MOD" -> c.setTarget(Compare.CompareTarget.MOD).setModRevision(operand);
      // jetcd's rpc.proto predates etcd's LEASE target (enum 4, field 8): send it as etcdctl does
      case "LEASE" -> c.setTargetValue(4).setUnknownFields(com.google.protobuf.UnknownFieldSet.newBuilder()
          .addField(8, com.google.protobuf.UnknownFieldSet.Field.newBuilder().addVarint(operand).build()).build());
      default -> throw new IllegalArgumentException(target);
    }
    assertThat(compare(c.build())).isEqualTo(expected);
  }

  @Test
  void valueComparesAndMissingKeys() {
    sm.put("k", "b");
    Compare.Builder c = Compare.newBuilder().setKey(bs("k")).setTarget(Compare.CompareTarget.VALUE);
    assertThat(compare(c.clone().setResult(Compare.CompareResult.EQUAL).setValue(bs("b")).build())).isTrue();
    assertThat(compare(c.clone().setResult(Compare.CompareResult.GREATER).setValue(bs("a")).build())).isTrue();
    assertThat(compare(c.clone().setResult(Compare.CompareResult.LESS).setValue(bs("a")).build())).isFalse();
    // a missing key has version 0 and create revision 0 (the "create if absent" idiom)
    assertThat(compare(Compare.newBuilder().setKey(bs("none")).setTarget(Compare.CompareTarget.CREATE)
        .setResult(Compare.CompareResult.EQUAL).setCreateRevision(0).build())).isTrue();
    // value compare against a missing key is false, as in etcd
    assertThat(compare(c.clone().setKey(bs("none")).setResult(Compare.CompareResult.EQUAL).setValue(bs("")).build())).isFalse();
  }

  @Test
  void branchesRunInOneRevisionWithNestedTxn() {
    sm.put("k", "1"); // rev 2
    TxnRequest nested = TxnRequest.newBuilder().addSuccess(putOp("n1", "x")).addSuccess(putOp("n2", "y")).build();
    TxnResponse r = sm.txn(TxnRequest.newBuilder()
        .addCompare(Compare.newBuilder().setKey(bs("k")).setTarget(Compare.CompareTarget.VALUE)
            .setResult(Compare.CompareResult.EQUAL).setValue(bs("1")))
        .addSuccess(putOp("a", "1")).addSuccess(getOp("k"))
        .addSuccess(RequestOp.newBuilder().setRequestTxn(nested))
        .addFailure(putOp("f", "no")).build());
    assertThat(r.getSucceeded()).isTrue();
    assertThat(r.getHeader().getRevision()).isEqualTo(3);
    assertThat(str(r.getResponses(1).getResponseRange().getKvs(0).getValue())).isEqualTo("1");
    assertThat(sm.get("n2").getKvs(0).getModRevision()).isEqualTo(3);
    assertThat(sm.get("a").getKvs(0).getModRevision()).isEqualTo(3);
    assertThat(sm.get("f").getKvsCount()).isZero();
    // a txn that only reads does not make a revision
    sm.txn(TxnRequest.newBuilder().addSuccess(getOp("a")).build());
    assertThat(sm.store.currentRevision()).isEqualTo(3);
    // the failure branch runs when a compare fails
    TxnResponse f = sm.txn(TxnRequest.newBuilder()
        .addCompare(Compare.newBuilder().setKey(bs("k")).setTarget(Compare.CompareTarget.VERSION)
            .setResult(Compare.CompareResult.GREATER).setVersion(10))
        .addSuccess(putOp("s", "no")).addFailure(putOp("f", "yes")).build());
    assertThat(f.getSucceeded()).isFalse();
    assertThat(str(sm.get("f").getKvs(0).getValue())).isEqualTo("yes");
  }

  @Test
  void limitsAreCheckedBeforeApply() {
    TxnRequest.Builder t = TxnRequest.newBuilder();
    for (int i = 0; i <= RequestChecks.MAX_TXN_OPS; i++) {
      t.addSuccess(putOp("k" + i, "v"));
    }
    KvException tooMany = org.assertj.core.api.Assertions.catchThrowableOfType(KvException.class, () -> RequestChecks.checkTxn(t.build()));
    assertThat(tooMany.getMessage()).isEqualTo("etcdserver: too many operations in txn request");
    assertThat(tooMany.code()).isEqualTo(Status.Code.INVALID_ARGUMENT);

    TxnRequest dup = TxnRequest.newBuilder().addSuccess(putOp("a", "1"))
        .addSuccess(RequestOp.newBuilder().setRequestDeleteRange(DeleteRangeRequest.newBuilder().setKey(bs("0")).setRangeEnd(bs("b")))).build();
    KvException d = org.assertj.core.api.Assertions.catchThrowableOfType(KvException.class, () -> RequestChecks.checkTxn(dup));
    assertThat(d.getMessage()).isEqualTo("etcdserver: duplicate key given in txn request");
    // puts of the same key in different branches are fine
    RequestChecks.checkTxn(TxnRequest.newBuilder().addSuccess(putOp("a", "1")).addFailure(putOp("a", "2")).build());
  }

  @Test
  void leasesAttachRevokeAndExpireDeletingKeysInOneRevision() {
    ApplyResult g = sm.apply(RaftCommand.newBuilder().setLeaseGrant(LeaseGrantRequest.newBuilder().setID(7).setTTL(10)).build());
    assertThat(g.getLeaseGrant().getID()).isEqualTo(7);
    assertThat(sm.apply(RaftCommand.newBuilder().setLeaseGrant(LeaseGrantRequest.newBuilder().setID(7).setTTL(10)).build())
        .getError().getMessage()).isEqualTo("etcdserver: lease already exists");
    sm.put(PutRequest.newBuilder().setKey(bs("l1")).setValue(bs("a")).setLease(7).build());
    sm.put(PutRequest.newBuilder().setKey(bs("l2")).setValue(bs("b")).setLease(7).build());
    assertThat(sm.get("l1").getKvs(0).getLease()).isEqualTo(7);
    assertThat(sm.store.lease(7)).get().satisfies(l -> assertThat(l.keys()).extracting(StateMachineHarness::str).containsExactly("l1", "l2"));
    long before = sm.store.currentRevision();
    sm.apply(RaftCommand.newBuilder().setLeaseRevoke(LeaseRevokeRequest.newBuilder().setID(7)).build());
    assertThat(sm.store.currentRevision()).isEqualTo(before + 1);
    assertThat(sm.get("l1").getKvsCount()).isZero();
    assertThat(sm.get("l2").getKvsCount()).isZero();
    assertThat(sm.store.lease(7)).isEmpty();
    assertThat(sm.leaseEvents).containsExactly("grant 7", "revoke 7");

    sm.apply(RaftCommand.newBuilder().setLeaseGrant(LeaseGrantRequest.newBuilder().setID(8).setTTL(5)).build());
    sm.put(PutRequest.newBuilder().setKey(bs("e")).setValue(bs("x")).setLease(8).build());
    // expiry of a known and an already-gone lease: the unknown one is skipped
    ApplyResult e = sm.apply(RaftCommand.newBuilder().setLeaseExpire(LeaseExpire.newBuilder().addIds(8).addIds(7)).build());
    assertThat(e.hasError()).isFalse();
    assertThat(sm.get("e").getKvsCount()).isZero();
    // re-putting a leased key without a lease detaches it
    sm.apply(RaftCommand.newBuilder().setLeaseGrant(LeaseGrantRequest.newBuilder().setID(9).setTTL(5)).build());
    sm.put(PutRequest.newBuilder().setKey(bs("d")).setValue(bs("x")).setLease(9).build());
    sm.put("d", "y");
    sm.apply(RaftCommand.newBuilder().setLeaseRevoke(LeaseRevokeRequest.newBuilder().setID(9)).build());
    assertThat(sm.get("d").getKvsCount()).isEqualTo(1);
  }

  @Test
  void aLeaseExpiryAppliesOnlyFromAnEntryOfTheTermItWasDecidedIn() {
    StateMachineHarness sm = new StateMachineHarness();
    for (long id : new long[] {1, 2, 3}) {
      sm.apply(RaftCommand.newBuilder().setLeaseGrant(LeaseGrantRequest.newBuilder().setID(id).setTTL(5)).build());
      sm.put(PutRequest.newBuilder().setKey(bs("k" + id)).setValue(bs("x")).setLease(id).build());
    }
    // decided by the leader of term 3, carried by an entry of term 4 (a deposed leader's
    // proposal that Ratis' client took to the next leader): the lease and its key stay
    ApplyResult stale = sm.applier.apply(expire(1, 3), 4);
    assertThat(stale.hasError()).isFalse();
    assertThat(sm.get("k1").getKvsCount()).isEqualTo(1);
    assertThat(sm.store.lease(1)).isPresent();
    assertThat(sm.applier.staleExpiries()).isEqualTo(1);
    // the same inside a batch (group commit)
    sm.applier.apply(RaftCommand.newBuilder().setBatch(CommandBatch.newBuilder().addCommands(expire(1, 3))).build(), 4);
    assertThat(sm.store.lease(1)).isPresent();
    assertThat(sm.applier.staleExpiries()).isEqualTo(2);
    // from an entry of its own term it applies
    sm.applier.apply(RaftCommand.newBuilder().setBatch(CommandBatch.newBuilder().addCommands(expire(1, 4))).build(), 4);
    assertThat(sm.get("k1").getKvsCount()).isZero();
    assertThat(sm.store.lease(1)).isEmpty();
    // an expiry without a term (written before the field existed) applies from any entry
    sm.applier.apply(expire(2, 0), 9);
    assertThat(sm.store.lease(2)).isEmpty();
    // a term set but the entry's unknown: skipped
    sm.applier.apply(expire(3, 5), 0);
    assertThat(sm.store.lease(3)).isPresent();
    assertThat(sm.applier.staleExpiries()).isEqualTo(3);
  }

  private static RaftCommand expire(long id, long term) {
    return RaftCommand.newBuilder().setLeaseExpire(LeaseExpire.newBuilder().addIds(id).setTerm(term)).build();
  }

  @Test
  void ignoreLeaseKeepsTheAttachedLease() {
    sm.apply(RaftCommand.newBuilder().setLeaseGrant(LeaseGrantRequest.newBuilder().setID(3).setTTL(5)).build());
    sm.put(PutRequest.newBuilder().setKey(bs("k")).setValue(bs("a")).setLease(3).build());
    sm.put(PutRequest.newBuilder().setKey(bs("k")).setValue(bs("b")).setIgnoreLease(true).build());
    assertThat(sm.get("k").getKvs(0).getLease()).isEqualTo(3);
    assertThat(sm.get("k").getKvs(0).getValue()).isEqualTo(ByteString.copyFromUtf8("b"));
  }
}
