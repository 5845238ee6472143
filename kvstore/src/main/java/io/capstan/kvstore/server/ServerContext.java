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

/** What the gRPC services share: the store, the Raft node, metrics, and the response header. */
record ServerContext(MvccStore store, ClusterMembers members, RaftNode raft, MetricRegistry metrics,
    Executor readExecutor, int maxRequestBytes) {

  /** etcd's header: cluster and member IDs, the store revision, the Raft term. */
  ResponseHeader header(long revision) {
    return ResponseHeader.newBuilder()
        .setClusterId(raft.clusterId())
        .setMemberId(raft.memberId())
        .setRevision(revision > 0 ? revision : store.currentRevision())
        .setRaftTerm(raft.term())
        .build();
  }

  /** Proposes a command after etcd's size check (a request over the limit never enters the log). */
  CompletableFuture<ApplyResult> propose(RaftCommand command) {
    if (command.getSerializedSize() > maxRequestBytes) {
      return CompletableFuture.failedFuture(KvException.requestTooLarge());
    }
    return raft.propose(command);
  }
}
