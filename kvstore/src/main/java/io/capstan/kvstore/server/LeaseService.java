package io.capstan.kvstore.server;

import io.capstan.kvstore.mvcc.KvException;
import io.capstan.kvstore.proto.LeaseLeasesRequest;
import io.capstan.kvstore.proto.LeaseLeasesResponse;
import io.capstan.kvstore.proto.LeaseStatus;
import io.capstan.kvstore.proto.Query;
import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.LeaseGrantResponse;
import io.etcd.jetcd.api.LeaseGrpc;
import io.etcd.jetcd.api.LeaseKeepAliveRequest;
import io.etcd.jetcd.api.LeaseKeepAliveResponse;
import io.etcd.jetcd.api.LeaseRevokeRequest;
import io.etcd.jetcd.api.LeaseRevokeResponse;
import io.etcd.jetcd.api.LeaseTimeToLiveRequest;
import io.etcd.jetcd.api.LeaseTimeToLiveResponse;
import io.grpc.MethodDescriptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;

/**
 * etcd's Lease service. Grant and revoke go through the log (the proposer picks the ID and raises
 * a short TTL to the minimum); keep-alive and time-to-live are answered by the leader, who alone
 * tracks expiry.
 */
final class LeaseService extends LeaseGrpc.LeaseImplBase {
  /** etcd's MaxLeaseTTL. */
  private static final long MAX_TTL_SECONDS = 9_000_000_000L;

  private final ServerContext ctx;
  private final long minTtlSeconds;

  LeaseService(ServerContext ctx, long minTtlSeconds) {
    this.ctx = ctx;
    this.minTtlSeconds = minTtlSeconds;
  }

  /** The service with etcd's LeaseLeases method, which jetcd's generated stub lacks, added. */
  ServerServiceDefinition definition() {
    ServerServiceDefinition generated = bindService();
    ServerServiceDefinition.Builder b = ServerServiceDefinition.builder(LeaseGrpc.SERVICE_NAME);
    generated.getMethods().forEach(b::addMethod);
    MethodDescriptor<LeaseLeasesRequest, LeaseLeasesResponse> leases = MethodDescriptor
        .<LeaseLeasesRequest, LeaseLeasesResponse>newBuilder()
        .setType(MethodDescriptor.MethodType.UNARY)
        .setFullMethodName(MethodDescriptor.generateFullMethodName(LeaseGrpc.SERVICE_NAME, "LeaseLeases"))
        .setRequestMarshaller(ProtoUtils.marshaller(LeaseLeasesRequest.getDefaultInstance()))
        .setResponseMarshaller(ProtoUtils.marshaller(LeaseLeasesResponse.getDefaultInstance()))
        .build();
    b.addMethod(leases, ServerCalls.asyncUnaryCall(this::leaseLeases));
    return b.build();
  }

  @Override
  public void leaseGrant(LeaseGrantRequest request, StreamObserver<LeaseGrantResponse> observer) {
    if (request.getTTL() > MAX_TTL_SECONDS) {
      observer.onError(KvException.leaseTtlTooLarge().toStatus());
      return;
    }
    long id = request.getID();
    while (id == 0) {
      id = ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE;
    }
    LeaseGrantRequest fixed = LeaseGrantRequest.newBuilder()
        .setID(id)
        .setTTL(Math.max(request.getTTL(), minTtlSeconds))
        .build();
    Replies.reply(ctx.propose(RaftCommand.newBuilder().setLeaseGrant(fixed).build())
        .thenApply(r -> r.getLeaseGrant().toBuilder().setHeader(ctx.header(r.getLeaseGrant().getHeader().getRevision())).build()),
        observer);
  }

  @Override
  public void leaseRevoke(LeaseRevokeRequest request, StreamObserver<LeaseRevokeResponse> observer) {
    Replies.reply(ctx.propose(RaftCommand.newBuilder().setLeaseRevoke(request).build())
        .thenApply(r -> r.getLeaseRevoke().toBuilder().setHeader(ctx.header(r.getLeaseRevoke().getHeader().getRevision())).build()),
        observer);
  }

  @Override
  public StreamObserver<LeaseKeepAliveRequest> leaseKeepAlive(StreamObserver<LeaseKeepAliveResponse> out) {
    return new StreamObserver<>() {
      private final Object sendLock = new Object();

      @Override
      public void onNext(LeaseKeepAliveRequest request) {
        keepAlive(request.getID()).whenComplete((r, e) -> {
          synchronized (sendLock) {
            try {
              if (e != null) {
                out.onError(Replies.toStatus(e));
              } else {
                out.onNext(r);
              }
            } catch (RuntimeException ignored) {
              // the stream is already closed
            }
          }
        });
      }

      @Override
      public void onError(Throwable t) {
        // client went away; nothing to clean up
      }

      @Override
      public void onCompleted() {
        synchronized (sendLock) {
          out.onCompleted();
        }
      }
    };
  }

  private CompletableFuture<LeaseKeepAliveResponse> keepAlive(long id) {
    return ctx.raft().leaderQuery(Query.newBuilder().setLeaseKeepAlive(id).build()).thenApply(bytes -> {
      try {
        LeaseKeepAliveResponse r = LeaseKeepAliveResponse.parseFrom(bytes);
        return r.toBuilder().setHeader(ctx.header(r.getHeader().getRevision())).build();
      } catch (com.google.protobuf.InvalidProtocolBufferException e) {
        throw new IllegalStateException(e);
      }
    });
  }

  @Override
  public void leaseTimeToLive(LeaseTimeToLiveRequest request, StreamObserver<LeaseTimeToLiveResponse> observer) {
    Replies.reply(ctx.raft().leaderQuery(Query.newBuilder().setLeaseTimeToLive(request).build()).thenApply(bytes -> {
      try {
        LeaseTimeToLiveResponse r = LeaseTimeToLiveResponse.parseFrom(bytes);
        return r.toBuilder().setHeader(ctx.header(r.getHeader().getRevision())).build();
      } catch (com.google.protobuf.InvalidProtocolBufferException e) {
        throw new IllegalStateException(e);
      }
    }), observer);
  }

  private void leaseLeases(LeaseLeasesRequest request, StreamObserver<LeaseLeasesResponse> observer) {
    Replies.reply(ctx.raft().readBarrier().thenApply(v -> {
      LeaseLeasesResponse.Builder out = LeaseLeasesResponse.newBuilder().setHeader(ctx.header(0));
      ctx.store().leaseIds().forEach(id -> out.addLeases(LeaseStatus.newBuilder().setID(id)));
      return out.build();
    }), observer);
  }
}
