package io.capstan.kvstore.server;

import com.codahale.metrics.Timer;
import io.capstan.kvstore.mvcc.KvException;
import io.capstan.kvstore.mvcc.RequestChecks;
import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.CompactionRequest;
import io.etcd.jetcd.api.CompactionResponse;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.DeleteRangeResponse;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.etcd.jetcd.api.ResponseHeader;
import io.etcd.jetcd.api.TxnRequest;
import io.etcd.jetcd.api.TxnResponse;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;

/**
 * etcd's KV service. Writes are checked, then proposed through Raft; linearizable reads wait on a
 * ReadIndex barrier, serializable ones read the local state without Raft. The handlers run on the
 * event loop ({@link CallExecutors}) and must not block: reads run on the read executor.
 */
final class KvService extends KVGrpc.KVImplBase {
  private final ServerContext ctx;
  private final Timer rangeTimer;
  private final Timer putTimer;
  private final Timer deleteTimer;
  private final Timer txnTimer;

  KvService(ServerContext ctx) {
    this.ctx = ctx;
    this.rangeTimer = ctx.metrics().timer("kvstore_grpc_range");
    this.putTimer = ctx.metrics().timer("kvstore_grpc_put");
    this.deleteTimer = ctx.metrics().timer("kvstore_grpc_delete_range");
    this.txnTimer = ctx.metrics().timer("kvstore_grpc_txn");
  }

  @Override
  public void range(RangeRequest request, StreamObserver<RangeResponse> observer) {
    Timer.Context t = rangeTimer.time();
    CompletableFuture<RangeResponse> result;
    try {
      RequestChecks.checkRange(request);
      if (!request.getSerializable()) {
        result = ctx.raft().readBarrier().thenApplyAsync(v -> read(request), ctx.readExecutor());
      } else {
        // waits only right after this member acknowledged a write it has not applied yet; the
        // read runs on the read executor, not on the event loop this handler runs on (a large
        // range would hold up every connection of that loop)
        result = ctx.raft().localReadBarrier().thenApplyAsync(v -> read(request), ctx.readExecutor());
      }
    } catch (KvException e) {
      result = CompletableFuture.failedFuture(e);
    }
    Replies.reply(result.whenComplete((r, e) -> t.stop()), observer);
  }

  private RangeResponse read(RangeRequest request) {
    RangeResponse.Builder out = ctx.store().range(request);
    return out.setHeader(ctx.header(ctx.store().currentRevision())).build();
  }

  @Override
  public void put(PutRequest request, StreamObserver<PutResponse> observer) {
    write(putTimer, () -> RequestChecks.checkPut(request), RaftCommand.newBuilder().setPut(request).build(),
        r -> r.getPut().toBuilder().setHeader(header(r.getPut().getHeader())).build(), observer);
  }

  @Override
  public void deleteRange(DeleteRangeRequest request, StreamObserver<DeleteRangeResponse> observer) {
    write(deleteTimer, () -> RequestChecks.checkDeleteRange(request),
        RaftCommand.newBuilder().setDeleteRange(request).build(),
        r -> r.getDeleteRange().toBuilder().setHeader(header(r.getDeleteRange().getHeader())).build(), observer);
  }

  @Override
  public void txn(TxnRequest request, StreamObserver<TxnResponse> observer) {
    write(txnTimer, () -> RequestChecks.checkTxn(request), RaftCommand.newBuilder().setTxn(request).build(),
        r -> r.getTxn().toBuilder().setHeader(header(r.getTxn().getHeader())).build(), observer);
  }

  @Override
  public void compact(CompactionRequest request, StreamObserver<CompactionResponse> observer) {
    Replies.reply(ctx.propose(RaftCommand.newBuilder().setCompaction(request).build())
        .thenApply(r -> r.getCompaction().toBuilder().setHeader(header(r.getCompaction().getHeader())).build()), observer);
  }

  /** Fills the member-specific header fields around the revision the apply chose. */
  private ResponseHeader header(ResponseHeader applied) {
    return ctx.header(applied.getRevision());
  }

  private <T> void write(Timer timer, Runnable check, RaftCommand command,
      Function<io.capstan.kvstore.proto.ApplyResult, T> extract, StreamObserver<T> observer) {
    Timer.Context t = timer.time();
    CompletableFuture<T> result;
    try {
      check.run();
      result = ctx.propose(command).thenApply(extract);
    } catch (KvException e) {
      result = CompletableFuture.failedFuture(e);
    }
    Replies.reply(result.whenComplete((r, e) -> t.stop()), observer);
  }
}
