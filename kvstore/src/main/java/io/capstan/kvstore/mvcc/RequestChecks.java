package io.capstan.kvstore.mvcc;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.TxnRequest;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The checks etcd makes on a request before proposing it (its {@code v3rpc/key.go}): they need
 * no state, so a bad request is refused without touching the Raft log.
 */
public final class RequestChecks {
  /** etcd's default {@code --max-txn-ops}. */
  public static final int MAX_TXN_OPS = 128;

  private RequestChecks() {}

  public static void checkRange(RangeRequest r) {
    if (r.getKey().isEmpty()) {
      throw KvException.keyNotProvided();
    }
  }

  public static void checkPut(PutRequest r) {
    if (r.getKey().isEmpty()) {
      throw KvException.keyNotProvided();
    }
    if (r.getIgnoreValue() && !r.getValue().isEmpty()) {
      throw KvException.valueProvided();
    }
    if (r.getIgnoreLease() && r.getLease() != 0) {
      throw KvException.leaseProvided();
    }
  }

  public static void checkDeleteRange(DeleteRangeRequest r) {
    if (r.getKey().isEmpty()) {
      throw KvException.keyNotProvided();
    }
  }

  public static void checkTxn(TxnRequest r) {
    if (r.getCompareCount() > MAX_TXN_OPS || r.getSuccessCount() > MAX_TXN_OPS
        || r.getFailureCount() > MAX_TXN_OPS) {
      throw KvException.tooManyOps();
    }
    for (var c : r.getCompareList()) {
      if (c.getKey().isEmpty()) {
        throw KvException.keyNotProvided();
      }
    }
    checkBranch(r.getSuccessList());
    checkBranch(r.getFailureList());
  }

  private static void checkBranch(List<RequestOp> ops) {
    for (RequestOp op : ops) {
      switch (op.getRequestCase()) {
        case REQUEST_RANGE -> checkRange(op.getRequestRange());
        case REQUEST_PUT -> checkPut(op.getRequestPut());
        case REQUEST_DELETE_RANGE -> checkDeleteRange(op.getRequestDeleteRange());
        case REQUEST_TXN -> checkTxn(op.getRequestTxn());
        default -> { }
      }
    }
    checkIntervals(ops, new HashSet<>(), new ArrayList<>());
  }

  /**
   * etcd's rule: in one branch (nested transactions included) a key may be written only once, and
   * no put may fall inside a deleted range.
   */
  private static void checkIntervals(List<RequestOp> ops, Set<ByteString> puts, List<ByteString[]> dels) {
    for (RequestOp op : ops) {
      if (op.hasRequestDeleteRange()) {
        DeleteRangeRequest d = op.getRequestDeleteRange();
        dels.add(new ByteString[] {d.getKey(), d.getRangeEnd()});
      }
    }
    for (RequestOp op : ops) {
      if (op.hasRequestPut()) {
        ByteString key = op.getRequestPut().getKey();
        if (!puts.add(key)) {
          throw KvException.duplicateKey();
        }
        for (ByteString[] d : dels) {
          if (MvccStore.inRange(key, d[0], d[1])) {
            throw KvException.duplicateKey();
          }
        }
      } else if (op.hasRequestTxn()) {
        TxnRequest t = op.getRequestTxn();
        checkIntervals(t.getSuccessList(), new HashSet<>(puts), new ArrayList<>(dels));
        checkIntervals(t.getFailureList(), new HashSet<>(puts), new ArrayList<>(dels));
      }
    }
  }
}
