package io.capstan.kvstore.raft;

import static io.capstan.kvstore.testing.Kv.bs;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.kvstore.proto.ForwardReply;
import io.capstan.kvstore.proto.ForwardRequest;
import io.capstan.kvstore.proto.LeaderCheck;
import io.capstan.kvstore.proto.RaftCommand;
import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.capstan.kvstore.testing.TcpRelay;
import io.etcd.jetcd.api.PutRequest;
import io.grpc.Context;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/**
 * The Calls stream a member keeps to each other member it calls ({@link LeaderForward#CALLS}),
 * driven here through a {@link LeaderForward} of the test's own against the members' real servers:
 * one stream carries every kind of call, each reply finds its own call whatever the order, a
 * refusal keeps the unary method's status, a call left unanswered fails alone at its timeout and
 * the stream goes on, and a stream that breaks fails at once every call it carried, with a status
 * that does not say a forward was not proposed.
 */
class CallStreamTest {
  private static RaftCommand put(String key) {
    return RaftCommand.newBuilder().setPut(PutRequest.newBuilder().setKey(bs(key)).setValue(bs("v"))).build();
  }

  private static ForwardRequest request(RaftNode leader, String key) {
    return ForwardRequest.newBuilder().setClusterId(leader.clusterId()).addCommands(put(key)).build();
  }

  private static String address(MiniCluster c, int member) {
    return c.config(member).listenClientUrls().get(0).toString();
  }

  /** The leader's index, once it serves writes and {@code forward} has a connection to it. */
  private static int connectToLeader(MiniCluster c, LeaderForward forward) {
    int lead = c.waitForLeader(Duration.ofSeconds(30));
    Kv.put(c.channel(lead), "ps/warm", "v");
    Awaitility.await("a connection to the leader").atMost(Duration.ofSeconds(10))
        .until(() -> forward.connected(address(c, lead)));
    return lead;
  }

  private static Throwable failure(CompletableFuture<?> f) {
    return failure(f, Duration.ofSeconds(20));
  }

  private static Throwable failure(CompletableFuture<?> f, Duration within) {
    assertThatThrownBy(() -> f.get(within.toMillis(), TimeUnit.MILLISECONDS)).isInstanceOf(ExecutionException.class);
    return f.handle((r, e) -> e).join();
  }

  @Test
  void repliesFindTheirRequestsAndAnUnansweredRequestFailsAloneAtItsTimeout() throws Exception {
    try (MiniCluster c = MiniCluster.builder().requestTimeout(Duration.ofSeconds(5)).start();
        LeaderForward forward = new LeaderForward()) {
      int lead = connectToLeader(c, forward);
      RaftNode leader = c.member(lead).raft();
      String address = address(c, lead);

      CompletableFuture<ForwardReply> held;
      CompletableFuture<ForwardReply> refused;
      try (ApplyHold hold = ApplyHold.before(leader.stateMachine())) {
        held = forward.send(address, request(leader, "ps/held"), 400);
        // sent after the held one on the same stream, answered before it
        refused = forward.send(address, request(leader, "ps/other-cluster").toBuilder()
            .setClusterId(leader.clusterId() ^ 1).build(), 10_000);
        assertThat(failure(refused)).isInstanceOf(LeaderForward.Refused.class)
            .hasMessageStartingWith("capstan: cluster ID mismatch");
        assertThat(held).as("the held write's reply, while its apply is held").isNotDone();
        Throwable timedOut = failure(held);
        assertThat(Status.fromThrowable(timedOut).getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED);
        assertThat(LeaderForward.refused(timedOut)).as("a request that timed out may have been proposed").isFalse();
      }
      // the held write is applied after all; its late reply finds no one waiting, and the stream goes on
      Awaitility.await("the held write applied").atMost(Duration.ofSeconds(10))
          .until(() -> Kv.get(c.channel(lead), "ps/held", false).isPresent());
      ForwardReply next = forward.send(address, request(leader, "ps/next"), 10_000).get(20, TimeUnit.SECONDS);
      assertThat(next.getResults(0).hasPut()).isTrue();
      CompletableFuture<?>[] many = new CompletableFuture<?>[20];
      for (int i = 0; i < many.length; i++) {
        many[i] = forward.send(address, request(leader, "ps/many/" + i), 10_000);
      }
      CompletableFuture.allOf(many).get(20, TimeUnit.SECONDS);
      long revision = 0;
      for (CompletableFuture<?> f : many) {
        long r = ((ForwardReply) f.join()).getResults(0).getPut().getHeader().getRevision();
        assertThat(r).as("each request's own result, in the order sent").isGreaterThan(revision);
        revision = r;
      }
      // the read path's calls on the same stream: the leader's read index, and a member's answer
      // to a leader check (another member: a second stream)
      long readIndex = forward.readIndex(address, leader.clusterId(), 10_000).get(20, TimeUnit.SECONDS);
      assertThat(readIndex).isPositive().isLessThanOrEqualTo(leader.commitIndex());
      int other = (lead + 1) % 3;
      LeaderCheck check = LeaderCheck.newBuilder().setClusterId(leader.clusterId()).setTerm(leader.term())
          .setLeader(leader.division().getId().toString()).build();
      assertThat(forward.check(address(c, other), check, 10_000).get(20, TimeUnit.SECONDS)).isTrue();
      assertThat(forward.check(address(c, other), check.toBuilder().setTerm(leader.term() + 1).build(), 10_000)
          .get(20, TimeUnit.SECONDS)).isFalse();
      assertThat(forward.streamsOpened.get()).as("one stream a member, for every call").isEqualTo(2);
      assertThat(forward.streamCalls.get()).as("calls sent on the streams").isEqualTo(2 + 1 + many.length + 3);
    }
  }

  /**
   * A connection to a member that goes silent without closing (no reset: a host gone, a network
   * dropping packets) ends the Calls stream on it at gRPC's keep-alive, failing the call waiting
   * there long before its own timeout, as of unknown outcome; the next call gets a new connection
   * and a new stream. Without the keep-alive every call would wait on the silent connection for
   * its full timeout, one after the other, until TCP gave up on it.
   */
  @Test
  void aStreamOnAConnectionGoneSilentEndsAtTheKeepAliveAndTheNextCallGetsANewOne() throws Exception {
    try (MiniCluster c = MiniCluster.builder().start(); LeaderForward forward = new LeaderForward()) {
      int lead = connectToLeader(c, forward);
      RaftNode leader = c.member(lead).raft();
      try (TcpRelay relay = new TcpRelay(c.config(lead).listenClientUrls().get(0).port())) {
        String address = relay.address();
        assertThat(forward.send(address, request(leader, "ka/first"), 10_000).get(20, TimeUnit.SECONDS)
            .getResults(0).hasPut()).isTrue();
        relay.silenceOpenConnections();
        long silenced = System.nanoTime();
        CompletableFuture<ForwardReply> waiting = forward.send(address, request(leader, "ka/waiting"), 120_000);
        Throwable ended = failure(waiting, Duration.ofSeconds(60));
        Duration took = Duration.ofNanos(System.nanoTime() - silenced);
        assertThat(took).as("ended by the keep-alive (%d s of silence, then %d s for the ping), not at the call's 120 s",
            LeaderForward.KEEPALIVE_SECONDS, LeaderForward.KEEPALIVE_TIMEOUT_SECONDS)
            .isGreaterThanOrEqualTo(Duration.ofSeconds(LeaderForward.KEEPALIVE_SECONDS))
            .isLessThan(Duration.ofSeconds(LeaderForward.KEEPALIVE_SECONDS + LeaderForward.KEEPALIVE_TIMEOUT_SECONDS + 20));
        assertThat(Status.fromThrowable(ended).getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(LeaderForward.refused(ended)).as("it may have reached the leader").isFalse();

        assertThat(forward.send(address, request(leader, "ka/next"), 10_000).get(30, TimeUnit.SECONDS)
            .getResults(0).hasPut()).isTrue();
        assertThat(relay.connections()).as("a new connection for the next call").isEqualTo(2);
        assertThat(forward.streamsOpened.get()).as("and a new stream").isEqualTo(2);
      }
    }
  }

  /**
   * A member of an earlier version serves the unary methods but not the Calls stream. Its
   * UNIMPLEMENTED refuses the call that met it (nothing was proposed, so a forward may go another
   * way), and every later call to that member is unary. The member here is the leader's real
   * Forward service without its Calls method, on a server of the test's own.
   */
  @Test
  void aMemberWithoutTheStreamIsCalledUnaryAfterItsFirstRefusal() throws Exception {
    try (MiniCluster c = MiniCluster.builder().start(); LeaderForward forward = new LeaderForward();
        LeaderForward serving = new LeaderForward()) {
      int lead = connectToLeader(c, forward);
      RaftNode leader = c.member(lead).raft();
      ServerServiceDefinition.Builder withoutCalls = ServerServiceDefinition.builder(LeaderForward.SERVICE);
      serving.service(leader).getMethods().stream()
          .filter(m -> !m.getMethodDescriptor().getFullMethodName().equals(LeaderForward.CALLS.getFullMethodName()))
          .forEach(withoutCalls::addMethod);
      Server older = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
          .addService(withoutCalls.build()).build().start();
      try {
        String address = "127.0.0.1:" + older.getPort();
        Throwable first = failure(forward.send(address, request(leader, "older/first"), 10_000));
        assertThat(LeaderForward.refused(first)).as("UNIMPLEMENTED: nothing was proposed (%s)", first).isTrue();
        assertThat(forward.send(address, request(leader, "older/next"), 10_000).get(20, TimeUnit.SECONDS)
            .getResults(0).hasPut()).isTrue();
        assertThat(forward.readIndex(address, leader.clusterId(), 10_000).get(20, TimeUnit.SECONDS)).isPositive();
        assertThat(Kv.get(c.channel(lead), "older/first", false)).as("the refused write").isEmpty();
        assertThat(Kv.get(c.channel(lead), "older/next", false)).as("the unary one").isPresent();
        assertThat(forward.streamsOpened.get()).as("one stream tried").isEqualTo(1);
        assertThat(forward.streamCalls.get()).as("one call on it, the refused one").isEqualTo(1);
      } finally {
        older.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
      }
    }
  }

  /**
   * The stream belongs to the member, not to the request that opened it: a forward is usually
   * sent while a client's call is served (its gRPC context current), and that call's
   * cancellation or deadline must not end the stream and the other clients' calls on it (CI saw
   * a keep-alive stream's cancellation end a follower's stream and its read index calls).
   */
  @Test
  void theCancellationOfTheRequestThatOpenedTheStreamDoesNotEndIt() throws Exception {
    try (MiniCluster c = MiniCluster.builder().start(); LeaderForward forward = new LeaderForward()) {
      int lead = connectToLeader(c, forward);
      RaftNode leader = c.member(lead).raft();
      String address = address(c, lead);
      CompletableFuture<ForwardReply> first;
      CompletableFuture<ForwardReply> other;
      try (ApplyHold hold = ApplyHold.before(leader.stateMachine())) {
        Context.CancellableContext served = Context.current().withCancellation();
        // the stream opened, and a forward sent on it, inside a client call's context; another
        // forward on it from outside; then that client call ends, both forwards still pending
        first = served.call(() -> forward.send(address, request(leader, "ctx/first"), 10_000));
        other = forward.send(address, request(leader, "ctx/other"), 10_000);
        served.cancel(null);
      }
      assertThat(first.get(20, TimeUnit.SECONDS).getResults(0).hasPut()).as("the forward sent in that context").isTrue();
      assertThat(other.get(20, TimeUnit.SECONDS).getResults(0).hasPut()).as("the other forward").isTrue();
      assertThat(forward.send(address, request(leader, "ctx/after"), 10_000).get(20, TimeUnit.SECONDS)
          .getResults(0).hasPut()).isTrue();
      assertThat(forward.streamsOpened.get()).as("the same stream throughout").isEqualTo(1);
    }
  }

  @Test
  void aStreamThatBreaksFailsItsRequestsAtOnceAsOfUnknownOutcome() throws Exception {
    try (MiniCluster c = MiniCluster.builder().requestTimeout(Duration.ofSeconds(20)).start();
        LeaderForward forward = new LeaderForward()) {
      int lead = connectToLeader(c, forward);
      RaftNode leader = c.member(lead).raft();
      String address = address(c, lead);
      CompletableFuture<ForwardReply> pending;
      CompletableFuture<Void> killing;
      try (ApplyHold hold = ApplyHold.before(leader.stateMachine())) {
        pending = forward.send(address, request(leader, "ps/pending"), 20_000);
        Awaitility.await("the write in the leader's queue").atMost(Duration.ofSeconds(10))
            .until(() -> leader.forwardReceivedCommands() > 0);
        long killed = System.nanoTime();
        // on another thread: the member's Raft server waits for its held apply thread as it closes
        killing = CompletableFuture.runAsync(() -> c.kill(lead));
        Throwable broken = failure(pending);
        assertThat(Duration.ofNanos(System.nanoTime() - killed)).as("failed with the stream, not at its 20 s timeout")
            .isLessThan(Duration.ofSeconds(10));
        assertThat(LeaderForward.refused(broken)).as("the leader may have proposed it").isFalse();
        assertThat(Status.fromThrowable(broken).getCode()).isIn(Status.Code.UNAVAILABLE, Status.Code.CANCELLED);
      }
      killing.get(60, TimeUnit.SECONDS);
    }
  }
}
