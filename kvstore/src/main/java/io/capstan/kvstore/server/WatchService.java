package io.capstan.kvstore.server;

import io.capstan.kvstore.watch.WatchHub;
import io.capstan.kvstore.watch.WatchStream;
import io.etcd.jetcd.api.WatchGrpc;
import io.etcd.jetcd.api.WatchRequest;
import io.etcd.jetcd.api.WatchResponse;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.Executor;

/** etcd's Watch service: each call is a {@link WatchStream} on the member's {@link WatchHub}. */
final class WatchService extends WatchGrpc.WatchImplBase {
  private final ServerContext ctx;
  private final WatchHub hub;
  private final Executor sendExecutor;

  WatchService(ServerContext ctx, WatchHub hub, Executor sendExecutor) {
    this.ctx = ctx;
    this.hub = hub;
    this.sendExecutor = sendExecutor;
  }

  @Override
  public StreamObserver<WatchRequest> watch(StreamObserver<WatchResponse> out) {
    return new WatchStream(hub, out, ctx::header, sendExecutor);
  }
}
