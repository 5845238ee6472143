package io.capstan.apiserver.grpc;

import io.capstan.api.server.v1.ApiServerGrpc;
import io.capstan.apiserver.ApiServer;
import io.capstan.apiserver.storage.EtcdProcess;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.util.concurrent.TimeUnit;

/** Test fixture: a real etcd 3.4, an api-server over it, and a gRPC channel to the api-server. */
final class ApiServerOnEtcd implements AutoCloseable {
  final EtcdProcess etcd;
  final ApiServer server;
  final ManagedChannel channel;

  ApiServerOnEtcd(int watchWindow) throws IOException {
    etcd = new EtcdProcess();
    try {
      server = ApiServer.start(etcd.endpoint(), "127.0.0.1", 0, 0, watchWindow);
    } catch (IOException | RuntimeException e) {
      etcd.close();
      throw e;
    }
    channel = NettyChannelBuilder.forAddress("127.0.0.1", server.grpcPort()).usePlaintext().build();
  }

  ApiServerGrpc.ApiServerBlockingStub api() {
    return ApiServerGrpc.newBlockingStub(channel).withDeadlineAfter(20, TimeUnit.SECONDS);
  }

  @Override
  public void close() {
    channel.shutdownNow();
    server.close();
    etcd.close();
  }
}
