package io.capstan.bench;

import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.SettableFuture;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.LeaseGrpc;
import io.etcd.jetcd.api.LeaseKeepAliveRequest;
import io.etcd.jetcd.api.LeaseKeepAliveResponse;
import io.etcd.jetcd.api.LeaseRevokeRequest;
import io.etcd.jetcd.api.LeaseTimeToLiveRequest;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Lease keep-alives (over one KeepAlive stream, as etcd clients send them) or TimeToLive queries
 * of one lease: both are answered by the leader alone, so through a follower they measure its
 * hop to the leader as well.
 */
@Command(name = "lease", description = "Keep-alives (one stream) or TimeToLive queries of one lease.")
final class LeaseBench implements Callable<Integer> {
  @Mixin BenchMain.Common common;
  @Option(names = "--op", defaultValue = "keepalive", description = "keepalive or ttl (default: ${DEFAULT-VALUE}).") String op;
  @Option(names = "--clients", defaultValue = "1", description = "Requests in flight (default: ${DEFAULT-VALUE}).") int clients;
  @Option(names = "--total", defaultValue = "5000") int total;
  @Option(names = "--warmup", defaultValue = "500") int warmup;
  @Mixin ClientWarmUp.Limit warmUp;

  @Override
  public Integer call() throws Exception {
    if (!op.equals("keepalive") && !op.equals("ttl")) {
      System.err.println("--op must be keepalive or ttl, not " + op);
      return 2;
    }
    try (Endpoints eps = new Endpoints(common.endpoints, common.conns)) {
      long id = LeaseGrpc.newBlockingStub(eps.channel(0)).withDeadlineAfter(30, TimeUnit.SECONDS)
          .leaseGrant(LeaseGrantRequest.newBuilder().setTTL(600).build()).getID();
      try {
        LoadDriver.Result r;
        if (op.equals("ttl")) {
          LeaseTimeToLiveRequest req = LeaseTimeToLiveRequest.newBuilder().setID(id).build();
          IntFunction<ListenableFuture<?>> ttl = i -> LeaseGrpc.newFutureStub(eps.channel(i)).withDeadlineAfter(30, TimeUnit.SECONDS)
              .leaseTimeToLive(req);
          LoadDriver.warmUp("lease ttl", warmup, clients, warmUp.limit, ttl);
          r = LoadDriver.run(total, clients, ttl);
        } else {
          try (KeepAlives stream = new KeepAlives(eps, id)) {
            IntFunction<ListenableFuture<?>> keepAlive = i -> stream.send();
            LoadDriver.warmUp("lease keepalive", warmup, clients, warmUp.limit, keepAlive);
            r = LoadDriver.run(total, clients, keepAlive);
          }
        }
        System.out.println(r.line("lease op=" + op + " clients=" + clients + " total=" + total));
        return r.errors() == 0 ? 0 : 1;
      } finally {
        LeaseGrpc.newBlockingStub(eps.channel(0)).withDeadlineAfter(30, TimeUnit.SECONDS)
            .leaseRevoke(LeaseRevokeRequest.newBuilder().setID(id).build());
      }
    }
  }

  /**
   * One KeepAlive stream; each send's future completes with the next answer (answers to one
   * lease are alike, so with several in flight an answer completes the oldest waiting send).
   */
  private static final class KeepAlives implements AutoCloseable {
    private final ConcurrentLinkedQueue<SettableFuture<LeaseKeepAliveResponse>> waiting = new ConcurrentLinkedQueue<>();
    private final StreamObserver<LeaseKeepAliveRequest> requests;
    private final LeaseKeepAliveRequest request;

    KeepAlives(Endpoints eps, long id) {
      request = LeaseKeepAliveRequest.newBuilder().setID(id).build();
      requests = LeaseGrpc.newStub(eps.channel(0)).leaseKeepAlive(new StreamObserver<>() {
        @Override
        public void onNext(LeaseKeepAliveResponse r) {
          SettableFuture<LeaseKeepAliveResponse> f = waiting.poll();
          if (f != null) {
            if (r.getTTL() > 0) {
              f.set(r);
            } else {
              f.setException(new IllegalStateException("keep-alive answered TTL " + r.getTTL()));
            }
          }
        }

        @Override
        public void onError(Throwable t) {
          for (SettableFuture<LeaseKeepAliveResponse> f; (f = waiting.poll()) != null; ) {
            f.setException(t);
          }
        }

        @Override
        public void onCompleted() {
          onError(new IllegalStateException("the server ended the keep-alive stream"));
        }
      });
    }

    synchronized SettableFuture<LeaseKeepAliveResponse> send() {
      SettableFuture<LeaseKeepAliveResponse> f = SettableFuture.create();
      waiting.add(f);
      requests.onNext(request);
      return f;
    }

    @Override
    public void close() {
      requests.onCompleted();
    }
  }
}
