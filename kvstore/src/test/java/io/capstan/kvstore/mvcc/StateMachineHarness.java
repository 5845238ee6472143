package io.capstan.kvstore.mvcc;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.proto.ApplyError;
import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.CompactionRequest;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.DeleteRangeResponse;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.etcd.jetcd.api.TxnRequest;
import io.etcd.jetcd.api.TxnResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** A state machine without Raft: the store and the applier, driven with etcd request protos. */
final class StateMachineHarness {
  final MvccStore store = new MvccStore();
  final ClusterMembers members = new ClusterMembers();
  final List<String> leaseEvents = new ArrayList<>();
  final RequestApplier applier = new RequestApplier(store, members, new RequestApplier.LeaseObserver() {
    @Override
    public void granted(long id, long ttlSeconds) {
      leaseEvents.add("grant " + id);
    }

    @Override
    public void revoked(long id) {
      leaseEvents.add("revoke " + id);
    }
  });

  static ByteString bs(String s) {
    return ByteString.copyFromUtf8(s);
  }

  static String str(ByteString b) {
    return b.toString(StandardCharsets.UTF_8);
  }

  ApplyResult apply(RaftCommand c) {
    return applier.apply(c);
  }

  PutResponse put(String key, String value) {
    return put(PutRequest.newBuilder().setKey(bs(key)).setValue(bs(value)).build());
  }

  PutResponse put(PutRequest r) {
    ApplyResult res = apply(RaftCommand.newBuilder().setPut(r).build());
    assertThat(res.hasError()).as("put error %s", res.getError()).isFalse();
    return res.getPut();
  }

  ApplyError putError(PutRequest r) {
    ApplyResult res = apply(RaftCommand.newBuilder().setPut(r).build());
    assertThat(res.hasError()).as("expected an error").isTrue();
    return res.getError();
  }

  DeleteRangeResponse delete(String key, String end, boolean prevKv) {
    DeleteRangeRequest.Builder b = DeleteRangeRequest.newBuilder().setKey(bs(key)).setPrevKv(prevKv);
    if (end != null) {
      b.setRangeEnd(bs(end));
    }
    ApplyResult res = apply(RaftCommand.newBuilder().setDeleteRange(b).build());
    assertThat(res.hasError()).isFalse();
    return res.getDeleteRange();
  }

  TxnResponse txn(TxnRequest t) {
    ApplyResult res = apply(RaftCommand.newBuilder().setTxn(t).build());
    assertThat(res.hasError()).as("txn error %s", res.getError()).isFalse();
    return res.getTxn();
  }

  ApplyResult compact(long rev) {
    return apply(RaftCommand.newBuilder().setCompaction(CompactionRequest.newBuilder().setRevision(rev)).build());
  }

  RangeResponse range(RangeRequest r) {
    return store.range(r).build();
  }

  RangeResponse get(String key) {
    return range(RangeRequest.newBuilder().setKey(bs(key)).build());
  }

  RangeResponse getAt(String key, long rev) {
    return range(RangeRequest.newBuilder().setKey(bs(key)).setRevision(rev).build());
  }

  RangeResponse all(long rev) {
    return range(RangeRequest.newBuilder().setKey(bs("\0")).setRangeEnd(bs("\0")).setRevision(rev).build());
  }
}
