package io.capstan.kvstore.server;

import io.etcd.jetcd.api.KVGrpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallExecutorSupplier;
import java.util.Set;
import java.util.concurrent.Executor;

/**
 * Where each gRPC call of the client port runs. The KV methods, the leader's forward method,
 * the internal read-index methods (a member's answer to a leader check reads its Raft role, term
 * and leader; a leader's read index sends the checks and completes later) and the members' Calls
 * stream that carries those and the leader-only queries (a lease keep-alive or time-to-live is
 * answered from the state machine's tables, then waits for the leadership check) run on the Netty
 * event loop that read them: their handlers only check the request and hand it on (to the
 * proposal queue, a read barrier, or the read executor), and never block. Every other
 * call (watches, leases, maintenance, cluster) runs on a pool, as gRPC's default.
 *
 * <p>Measured: a put through gRPC's default executor is one more hand-off between threads (the
 * event loop wakes a pool thread, which proposes), on a 2-core machine where hand-offs are a large
 * part of a member's CPU. {@code -Dcapstan.grpc.inline=false} sends every call to the pool, for
 * A/B runs.
 */
final class CallExecutors implements ServerCallExecutorSupplier {
  static final boolean INLINE = Boolean.parseBoolean(System.getProperty("capstan.grpc.inline", "true"));
  private static final Set<String> INLINE_METHODS = java.util.stream.Stream.concat(java.util.stream.Stream.of(
      KVGrpc.getPutMethod().getFullMethodName(),
      KVGrpc.getDeleteRangeMethod().getFullMethodName(),
      KVGrpc.getTxnMethod().getFullMethodName(),
      KVGrpc.getCompactMethod().getFullMethodName(),
      KVGrpc.getRangeMethod().getFullMethodName()),
      java.util.stream.Stream.concat(io.capstan.kvstore.raft.RaftNode.FORWARD_METHODS.stream(),
          io.capstan.kvstore.raft.RaftNode.READ_INDEX_METHODS.stream()))
      .collect(java.util.stream.Collectors.toUnmodifiableSet());

  private final Executor pool;

  CallExecutors(Executor pool) {
    this.pool = pool;
  }

  /** The pool, or null: the call stays on the event loop (the server's executor is direct). */
  @Override
  public <ReqT, RespT> Executor getExecutor(ServerCall<ReqT, RespT> call, Metadata headers) {
    return INLINE && INLINE_METHODS.contains(call.getMethodDescriptor().getFullMethodName()) ? null : pool;
  }
}
