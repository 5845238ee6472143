package io.capstan.kvstore.server;

import com.codahale.metrics.MetricRegistry;
import io.capstan.kvstore.mvcc.ClusterMembers;
import io.capstan.kvstore.mvcc.KvException;
import io.capstan.kvstore.mvcc.MvccStore;
import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.RaftCommand;
import io.capstan.kvstore.raft.RaftNode;
import io.etcd.jetcd.api.ResponseHeader;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;

/** What the gRPC services share: the store, the Raft node, metrics, and the response header. */
record ServerContext(MvccStore store, ClusterMembers members, RaftNode raft, MetricRegistry metrics,
    Executor readExecutor, int maxRequestBytes, long quotaBytes, AtomicBoolean noSpace) {

  ServerContext(MvccStore store, ClusterMembers members, RaftNode raft, MetricRegistry metrics,
      Executor readExecutor, int maxRequestBytes, long quotaBytes) {
    this(store, members, raft, metrics, readExecutor, maxRequestBytes, quotaBytes, new AtomicBoolean());
  }

  /** etcd's header: cluster and member IDs, the store revision, the Raft term. */
  ResponseHeader header(long revision) {
    return ResponseHeader.newBuilder()
        .setClusterId(raft.clusterId())
        .setMemberId(raft.memberId())
        .setRevision(revision > 0 ? revision : store.currentRevision())
        .setRaftTerm(raft.term())
        .build();
  }

  /**
   * Proposes a command after etcd's checks on the proposing member: the request size limit, and
   * the space quota (a command that adds data is refused while the store is over it; deletes and
   * compactions always pass, and compaction is what frees space). Neither check is part of the
   * replicated apply, so members configured differently cannot diverge.
   */
  CompletableFuture<ApplyResult> propose(RaftCommand command) {
    int size = command.getSerializedSize();
    if (size > maxRequestBytes) {
      return CompletableFuture.failedFuture(KvException.requestTooLarge());
    }
    if (addsData(command)) {
      // what the command may add: its bytes plus the store's per-version overhead (a lease grant
      // is small but not free)
      if (store.approximateBytes() + size + MvccStore.VERSION_OVERHEAD_BYTES > quotaBytes) {
        noSpace.set(true);
        return CompletableFuture.failedFuture(KvException.noSpace());
      }
      noSpace.set(false);
    }
    return raft.propose(command);
  }

  /**
   * etcd's NOSPACE alarm: raised when this member refused a write for space, cleared by the next
   * write it accepts (after a compaction made room).
   */
  boolean noSpaceAlarm() {
    return noSpace.get();
  }

  private static boolean addsData(RaftCommand c) {
    return switch (c.getCommandCase()) {
      case PUT, LEASE_GRANT -> true;
      case TXN -> hasPut(c.getTxn().getSuccessList()) || hasPut(c.getTxn().getFailureList());
      default -> false;
    };
  }

  private static boolean hasPut(java.util.List<io.etcd.jetcd.api.RequestOp> ops) {
    for (io.etcd.jetcd.api.RequestOp op : ops) {
      if (op.hasRequestPut() || (op.hasRequestTxn()
          && (hasPut(op.getRequestTxn().getSuccessList()) || hasPut(op.getRequestTxn().getFailureList())))) {
        return true;
      }
    }
    return false;
  }
}
