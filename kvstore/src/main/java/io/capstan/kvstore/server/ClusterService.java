package io.capstan.kvstore.server;

import io.capstan.kvstore.proto.MemberAttributes;
import io.etcd.jetcd.api.ClusterGrpc;
import io.etcd.jetcd.api.Member;
import io.etcd.jetcd.api.MemberListRequest;
import io.etcd.jetcd.api.MemberListResponse;
import io.grpc.stub.StreamObserver;

/**
 * etcd's Cluster service: MemberList from the Raft configuration, with each member's client URLs
 * as it published them through the log. Membership changes (MemberAdd/Remove/Update) answer
 * UNIMPLEMENTED for now.
 */
final class ClusterService extends ClusterGrpc.ClusterImplBase {
  private final ServerContext ctx;

  ClusterService(ServerContext ctx) {
    this.ctx = ctx;
  }

  @Override
  public void memberList(MemberListRequest request, StreamObserver<MemberListResponse> observer) {
    Replies.replyNow(() -> {
      MemberListResponse.Builder out = MemberListResponse.newBuilder().setHeader(ctx.header(0));
      ctx.raft().peers().forEach((name, peerUrl) -> {
        long id = ctx.raft().memberIdOf(name);
        Member.Builder m = Member.newBuilder().setID(id).setName(name).addPeerURLs(peerUrl);
        ctx.members().get(id).map(MemberAttributes::getClientUrlsList).ifPresent(m::addAllClientURLs);
        out.addMembers(m);
      });
      return out.build();
    }, observer);
  }
}
