package io.capstan.kvstore.mvcc;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.ApplyResults;
import io.capstan.kvstore.proto.Empty;
import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.Compare;
import io.etcd.jetcd.api.CompactionResponse;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.DeleteRangeResponse;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.LeaseGrantResponse;
import io.etcd.jetcd.api.LeaseRevokeResponse;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.ResponseHeader;
import io.etcd.jetcd.api.ResponseOp;
import io.etcd.jetcd.api.TxnRequest;
import io.etcd.jetcd.api.TxnResponse;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Applies the replicated commands to the {@link MvccStore}. Deterministic and free of side
 * effects outside the store: the result depends only on the store's state and the command, so
 * every member computes the same state and the same response. A refused command changes nothing
 * and yields an {@link io.capstan.kvstore.proto.ApplyError} carrying etcd's status code and text.
 */
public final class RequestApplier {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(RequestApplier.class);
  /** Hears of lease grants and revocations, to track expiry (which is not replicated state). */
  public interface LeaseObserver {
    void granted(long id, long ttlSeconds);

    void revoked(long id);
  }

  private final MvccStore store;
  private final ClusterMembers members;
  private final LeaseObserver leaseObserver;
  /** Written by the applying thread only. */
  private volatile long staleExpiries;

  public RequestApplier(MvccStore store, ClusterMembers members, LeaseObserver leaseObserver) {
    this.store = store;
    this.members = members;
    this.leaseObserver = leaseObserver;
  }

  /** Applies {@code cmd} as a command of no particular log entry (tests, tools): see {@link #apply(RaftCommand, long)}. */
  public ApplyResult apply(RaftCommand cmd) {
    return apply(cmd, 0);
  }

  /**
   * @param entryTerm the Raft term of the log entry that carries {@code cmd}, 0 if unknown. A
   *     lease expiry proposed in another term than its entry's is skipped (see {@code
   *     LeaseExpire.term}); so is one whose term is set while the entry's is unknown.
   */
  public ApplyResult apply(RaftCommand cmd, long entryTerm) {
    try {
      return switch (cmd.getCommandCase()) {
        case PUT -> ApplyResult.newBuilder()
            .setPut(store.<PutResponse>write(w -> put(w, cmd.getPut()).setHeader(header(w)).build())).build();
        case DELETE_RANGE -> ApplyResult.newBuilder()
            .setDeleteRange(store.<DeleteRangeResponse>write(w -> deleteRange(w, cmd.getDeleteRange()).setHeader(header(w)).build())).build();
        case TXN -> ApplyResult.newBuilder().setTxn(store.<TxnResponse>write(w -> txn(w, cmd.getTxn()))).build();
        case COMPACTION -> {
          long start = System.nanoTime();
          store.compact(cmd.getCompaction().getRevision());
          LOG.info("compacted to revision {} in {} ms ({} keys left)", cmd.getCompaction().getRevision(),
              (System.nanoTime() - start) / 1_000_000, store.keyCount());
          yield ApplyResult.newBuilder().setCompaction(CompactionResponse.newBuilder()
              .setHeader(ResponseHeader.newBuilder().setRevision(store.currentRevision()))).build();
        }
        case LEASE_GRANT -> ApplyResult.newBuilder().setLeaseGrant(grant(cmd.getLeaseGrant())).build();
        case LEASE_REVOKE -> {
          revoke(cmd.getLeaseRevoke().getID(), true);
          yield ApplyResult.newBuilder().setLeaseRevoke(LeaseRevokeResponse.newBuilder()
              .setHeader(ResponseHeader.newBuilder().setRevision(store.currentRevision()))).build();
        }
        case LEASE_EXPIRE -> {
          long decidedIn = cmd.getLeaseExpire().getTerm();
          if (decidedIn == 0 || decidedIn == entryTerm) {
            for (long id : cmd.getLeaseExpire().getIdsList()) {
              revoke(id, false);
            }
          } else {
            staleExpiries = staleExpiries + 1;
          }
          yield empty();
        }
        case READ_BARRIER -> empty();
        case MEMBER_ATTRIBUTES -> {
          members.update(cmd.getMemberAttributes());
          yield empty();
        }
        case BATCH -> {
          ApplyResults.Builder results = ApplyResults.newBuilder();
          for (RaftCommand c : cmd.getBatch().getCommandsList()) {
            if (c.getCommandCase() == RaftCommand.CommandCase.BATCH) {
              throw new IllegalStateException("Raft log entry holds a nested command batch");
            }
            results.addResults(apply(c, entryTerm));
          }
          yield ApplyResult.newBuilder().setBatch(results).build();
        }
        case COMMAND_NOT_SET -> throw new IllegalStateException(
            "Raft log entry holds a command this member does not know (written by a newer version?)");
      };
    } catch (KvException e) {
      return ApplyResult.newBuilder()
          .setError(e.toApplyError())
          .build();
    }
  }

  /**
   * Lease expiries skipped because a leader proposed them in a term it no longer led when they
   * reached the log (not replicated state: for metrics and tests).
   */
  public long staleExpiries() {
    return staleExpiries;
  }

  private static ApplyResult empty() {
    return ApplyResult.newBuilder().setEmpty(Empty.getDefaultInstance()).build();
  }

  private ResponseHeader.Builder header(MvccStore.WriteTxn w) {
    return ResponseHeader.newBuilder().setRevision(w.readRevision());
  }

  // ------------------------------------------------------------------ KV

  private void checkPut(MvccStore.WriteTxn w, PutRequest r) {
    if ((r.getIgnoreValue() || r.getIgnoreLease()) && w.live(r.getKey()) == null) {
      throw KvException.keyNotFound();
    }
    if (r.getLease() != 0 && !store.leases.exists(r.getLease())) {
      throw KvException.leaseNotFound();
    }
  }

  private PutResponse.Builder put(MvccStore.WriteTxn w, PutRequest r) {
    checkPut(w, r);
    return doPut(w, r);
  }

  private PutResponse.Builder doPut(MvccStore.WriteTxn w, PutRequest r) {
    KeyValue existing = w.live(r.getKey());
    ByteString value = r.getIgnoreValue() ? existing.getValue() : r.getValue();
    long lease = r.getIgnoreLease() ? existing.getLease() : r.getLease();
    KeyValue prev = w.put(r.getKey(), value, lease);
    PutResponse.Builder out = PutResponse.newBuilder();
    if (r.getPrevKv() && prev != null) {
      out.setPrevKv(prev);
    }
    return out;
  }

  private DeleteRangeResponse.Builder deleteRange(MvccStore.WriteTxn w, DeleteRangeRequest r) {
    List<KeyValue> deleted = w.deleteRange(r.getKey(), r.getRangeEnd());
    DeleteRangeResponse.Builder out = DeleteRangeResponse.newBuilder().setDeleted(deleted.size());
    if (r.getPrevKv()) {
      out.addAllPrevKvs(deleted);
    }
    return out;
  }

  // ------------------------------------------------------------------ Txn

  private TxnResponse txn(MvccStore.WriteTxn w, TxnRequest r) {
    // As etcd does: every compare, nested ones included, is evaluated against the state before
    // the transaction; then the chosen branches are checked; then they run.
    List<Boolean> path = new ArrayList<>();
    comparePath(w, r, path);
    checkBranch(w, r, path.iterator());
    TxnResponse.Builder out = execute(w, r, path.iterator());
    return out.setHeader(header(w)).build();
  }

  private void comparePath(MvccStore.WriteTxn w, TxnRequest r, List<Boolean> path) {
    boolean ok = true;
    for (Compare c : r.getCompareList()) {
      if (!compare(w, c)) {
        ok = false;
        break;
      }
    }
    path.add(ok);
    for (RequestOp op : ok ? r.getSuccessList() : r.getFailureList()) {
      if (op.hasRequestTxn()) {
        comparePath(w, op.getRequestTxn(), path);
      }
    }
  }

  private void checkBranch(MvccStore.WriteTxn w, TxnRequest r, Iterator<Boolean> path) {
    boolean ok = path.next();
    for (RequestOp op : ok ? r.getSuccessList() : r.getFailureList()) {
      switch (op.getRequestCase()) {
        case REQUEST_PUT -> checkPut(w, op.getRequestPut());
        case REQUEST_TXN -> checkBranch(w, op.getRequestTxn(), path);
        case REQUEST_RANGE -> checkRangeRevision(op.getRequestRange());
        default -> { }
      }
    }
  }

  private void checkRangeRevision(RangeRequest r) {
    if (r.getRevision() > 0 && r.getRevision() < store.compactRevision()) {
      throw KvException.compacted();
    }
  }

  private TxnResponse.Builder execute(MvccStore.WriteTxn w, TxnRequest r, Iterator<Boolean> path) {
    boolean ok = path.next();
    TxnResponse.Builder out = TxnResponse.newBuilder().setSucceeded(ok);
    for (RequestOp op : ok ? r.getSuccessList() : r.getFailureList()) {
      ResponseOp.Builder resp = ResponseOp.newBuilder();
      switch (op.getRequestCase()) {
        case REQUEST_RANGE -> resp.setResponseRange(w.range(op.getRequestRange()).setHeader(header(w)));
        case REQUEST_PUT -> resp.setResponsePut(doPut(w, op.getRequestPut()).setHeader(header(w)));
        case REQUEST_DELETE_RANGE -> resp.setResponseDeleteRange(
            deleteRange(w, op.getRequestDeleteRange()).setHeader(header(w)));
        case REQUEST_TXN -> resp.setResponseTxn(execute(w, op.getRequestTxn(), path).setHeader(header(w)));
        default -> { }
      }
      out.addResponses(resp);
    }
    return out;
  }

  private boolean compare(MvccStore.WriteTxn w, Compare c) {
    List<KeyValue> kvs = new ArrayList<>();
    for (KeyHistory h : store.span(c.getKey(), c.getRangeEnd()).values()) {
      KeyValue kv = h.live();
      if (kv != null) {
        kvs.add(kv);
      }
    }
    if (kvs.isEmpty()) {
      if (c.getTarget() == Compare.CompareTarget.VALUE) {
        return false;
      }
      return compareKv(c, KeyValue.getDefaultInstance());
    }
    for (KeyValue kv : kvs) {
      if (!compareKv(c, kv)) {
        return false;
      }
    }
    return true;
  }

  /**
   * etcd's LEASE compare target (enum value 4, lease in field 8) is missing from the rpc.proto
   * that jetcd ships, so it arrives as an unrecognised enum value and an unknown field.
   */
  private static final int TARGET_LEASE = 4;
  private static final int FIELD_LEASE = 8;

  private static boolean compareKv(Compare c, KeyValue kv) {
    int cmp = switch (c.getTargetValue()) {
      case Compare.CompareTarget.VERSION_VALUE -> Long.compare(kv.getVersion(), c.getVersion());
      case Compare.CompareTarget.CREATE_VALUE -> Long.compare(kv.getCreateRevision(), c.getCreateRevision());
      case Compare.CompareTarget.MOD_VALUE -> Long.compare(kv.getModRevision(), c.getModRevision());
      case Compare.CompareTarget.VALUE_VALUE -> MvccStore.KEY_ORDER.compare(kv.getValue(), c.getValue());
      case TARGET_LEASE -> {
        var field = c.getUnknownFields().getField(FIELD_LEASE);
        long lease = field == null || field.getVarintList().isEmpty() ? 0 : field.getVarintList().get(0);
        yield Long.compare(kv.getLease(), lease);
      }
      default -> throw new KvException(io.grpc.Status.Code.INVALID_ARGUMENT, "etcdserver: unknown compare target");
    };
    return switch (c.getResult()) {
      case EQUAL -> cmp == 0;
      case NOT_EQUAL -> cmp != 0;
      case GREATER -> cmp > 0;
      case LESS -> cmp < 0;
      default -> throw new KvException(io.grpc.Status.Code.INVALID_ARGUMENT, "etcdserver: unknown compare result");
    };
  }

  // ------------------------------------------------------------------ leases

  private LeaseGrantResponse grant(LeaseGrantRequest r) {
    long revision;
    store.lock().writeLock().lock();
    try {
      if (store.leases.exists(r.getID())) {
        throw KvException.leaseExists();
      }
      store.leases.grant(r.getID(), r.getTTL());
      revision = store.currentRevision();
    } finally {
      store.lock().writeLock().unlock();
    }
    leaseObserver.granted(r.getID(), r.getTTL());
    return LeaseGrantResponse.newBuilder()
        .setHeader(ResponseHeader.newBuilder().setRevision(revision))
        .setID(r.getID())
        .setTTL(r.getTTL())
        .build();
  }

  /** Deletes the lease's keys in one revision and forgets the lease. */
  private void revoke(long id, boolean mustExist) {
    boolean found = store.write(w -> {
      LeaseTable.Lease lease = store.leases.get(id);
      if (lease == null) {
        return false;
      }
      for (ByteString key : new ArrayList<>(lease.keys)) {
        w.deleteRange(key, ByteString.EMPTY);
      }
      store.leases.remove(id);
      return true;
    });
    if (!found && mustExist) {
      throw KvException.leaseNotFound();
    }
    if (found) {
      leaseObserver.revoked(id);
    }
  }
}
