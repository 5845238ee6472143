package io.capstan.kvstore.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.MaintenanceGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.etcd.jetcd.api.StatusRequest;
import io.etcd.jetcd.api.StatusResponse;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Which thread runs each call of a real gRPC server set up as the member's client port is. */
class CallExecutorsTest {

  @Test
  void kvCallsRunOnTheEventLoopAndOtherCallsOnThePool() throws Exception {
    Map<String, String> threads = new ConcurrentHashMap<>();
    ExecutorService pool = Executors.newCachedThreadPool(r -> new Thread(r, "test-call-pool"));
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(new KVGrpc.KVImplBase() {
          @Override
          public void put(PutRequest request, StreamObserver<PutResponse> observer) {
            threads.put("put", Thread.currentThread().getName());
            observer.onNext(PutResponse.getDefaultInstance());
            observer.onCompleted();
          }

          @Override
          public void range(RangeRequest request, StreamObserver<RangeResponse> observer) {
            threads.put("range", Thread.currentThread().getName());
            observer.onNext(RangeResponse.getDefaultInstance());
            observer.onCompleted();
          }
        })
        .addService(new MaintenanceGrpc.MaintenanceImplBase() {
          @Override
          public void status(StatusRequest request, StreamObserver<StatusResponse> observer) {
            threads.put("status", Thread.currentThread().getName());
            observer.onNext(StatusResponse.getDefaultInstance());
            observer.onCompleted();
          }
        })
        .directExecutor()
        .callExecutor(new CallExecutors(pool))
        .build()
        .start();
    ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext().build();
    try {
      KVGrpc.newBlockingStub(channel).put(PutRequest.getDefaultInstance());
      KVGrpc.newBlockingStub(channel).range(RangeRequest.getDefaultInstance());
      MaintenanceGrpc.newBlockingStub(channel).status(StatusRequest.getDefaultInstance());

      assertThat(CallExecutors.INLINE).isTrue();
      // gRPC's Netty event loop threads: "grpc-nio-worker-ELG-..." (epoll: "grpc-default-worker-ELG-...")
      assertThat(threads.get("put")).contains("worker-ELG");
      assertThat(threads.get("range")).contains("worker-ELG");
      assertThat(threads.get("status")).isEqualTo("test-call-pool");
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      pool.shutdownNow();
    }
  }
}
