package io.capstan.kvstore.raft;

import static io.capstan.kvstore.testing.Kv.bs;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.ForwardCall;
import io.capstan.kvstore.proto.ForwardCallReply;
import io.capstan.kvstore.proto.ForwardReply;
import io.capstan.kvstore.proto.ForwardRequest;
import io.capstan.kvstore.proto.LeaderQueryRequest;
import io.capstan.kvstore.proto.Query;
import io.capstan.kvstore.proto.LeaseExpire;
import io.capstan.kvstore.proto.RaftCommand;
import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.LeaseGrpc;
import io.etcd.jetcd.api.LeaseKeepAliveRequest;
import io.etcd.jetcd.api.LeaseKeepAliveResponse;
import io.etcd.jetcd.api.LeaseTimeToLiveRequest;
import io.etcd.jetcd.api.LeaseTimeToLiveResponse;
import io.etcd.jetcd.api.PutRequest;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Follower writes go to the leader's proposal queue ({@link LeaderForward}); the follower answers
 * once it has applied them itself; members refuse what they must not propose.
 */
class LeaderForwardTest {
  private static MiniCluster cluster;
  private static int leader;
  private static int follower;

  @BeforeAll
  static void start() {
    cluster = MiniCluster.start(3);
    leader = cluster.waitForLeader(Duration.ofSeconds(30));
    follower = (leader + 1) % 3;
    Kv.put(cluster.channel(leader), "fw/warm", "v"); // the leader is ready, the attributes published
  }

  @AfterAll
  static void stop() {
    cluster.close();
  }

  private static RaftNode raft(int i) {
    return cluster.member(i).raft();
  }

  private static ForwardReply forward(Channel ch, ForwardRequest request) {
    return ClientCalls.blockingUnaryCall(ch, LeaderForward.PROPOSE, io.grpc.CallOptions.DEFAULT
        .withDeadlineAfter(java.time.Duration.ofSeconds(10).toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS), request);
  }

  /**
   * {@code request} alone on a Calls stream (numbered 7) that the test then half-closes: its
   * answer, after which the member must end the stream.
   */
  private static ForwardCallReply onStream(Channel ch, ForwardRequest request) {
    LinkedBlockingQueue<Object> events = new LinkedBlockingQueue<>();
    var requests = ClientCalls.asyncBidiStreamingCall(ch.newCall(LeaderForward.CALLS,
        io.grpc.CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS)), new io.grpc.stub.StreamObserver<ForwardCallReply>() {
          @Override public void onNext(ForwardCallReply r) { events.add(r); }
          @Override public void onError(Throwable t) { events.add(t); }
          @Override public void onCompleted() { events.add("completed"); }
        });
    requests.onNext(ForwardCall.newBuilder().setId(7).setPropose(request).build());
    requests.onCompleted();
    try {
      Object reply = events.poll(10, TimeUnit.SECONDS);
      assertThat(reply).isInstanceOf(ForwardCallReply.class);
      assertThat(((ForwardCallReply) reply).getId()).as("the answer's number").isEqualTo(7);
      assertThat(events.poll(10, TimeUnit.SECONDS)).as("the stream's end").isEqualTo("completed");
      return (ForwardCallReply) reply;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** The unary method fails with {@code code}; on the stream the call fails with the same status. */
  private static void assertRefused(int member, ForwardRequest request, Status.Code code, String description) {
    assertThatThrownBy(() -> forward(cluster.channel(member), request))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
          assertThat(e.getStatus().getCode()).isEqualTo(code);
          assertThat(e.getStatus().getDescription()).startsWith(description);
        });
    ForwardCallReply streamed = onStream(cluster.channel(member), request);
    assertThat(streamed.getFailure().getCode()).isEqualTo(code.value());
    assertThat(streamed.getFailure().getDescription()).startsWith(description);
  }

  private static RaftCommand put(String key, String value) {
    return RaftCommand.newBuilder().setPut(PutRequest.newBuilder().setKey(bs(key)).setValue(bs(value))).build();
  }

  @Test
  void linearizableReadsUseAReadIndexTheLeaderConfirmedWithAMajority() {
    long confirmedBefore = raft(leader).readIndexConfirmed() + raft(follower).readIndexConfirmed();
    long fallbacksBefore = raft(leader).readIndexFallbacks() + raft(follower).readIndexFallbacks();
    Kv.put(cluster.channel(follower), "fw/read-index", "1");
    long streamedBefore = raft(leader).forwardStreamCalls() + raft(follower).forwardStreamCalls();
    for (int i = 0; i < 20; i++) {
      int via = i % 2 == 0 ? leader : follower;
      assertThat(Kv.get(cluster.channel(via), "fw/read-index", false)).get()
          .extracting(kv -> kv.getValue().toStringUtf8()).isEqualTo("1");
    }
    assertThat(raft(leader).readIndexConfirmed() + raft(follower).readIndexConfirmed() - confirmedBefore)
        .as("read rounds on a confirmed read index").isGreaterThanOrEqualTo(20);
    assertThat(raft(leader).readIndexFallbacks() + raft(follower).readIndexFallbacks() - fallbacksBefore)
        .as("read rounds that needed a log entry").isZero();
    // the follower's 10 read indexes and the leader's checks (at least one a round) on the members' Calls streams
    assertThat(raft(leader).forwardStreamCalls() + raft(follower).forwardStreamCalls() - streamedBefore)
        .as("calls on the members' streams").isGreaterThanOrEqualTo(20);
  }

  @Test
  void aMemberConfirmsOnlyTheLeaderItFollowsInItsTerm() {
    long term = raft(leader).term();
    String leaderId = raft(leader).peerId();
    assertThat(check(follower, term, leaderId, raft(follower).clusterId())).as("its leader, its term").isTrue();
    assertThat(check(follower, term + 1, leaderId, raft(follower).clusterId())).as("a later term").isFalse();
    assertThat(check(follower, term - 1, leaderId, raft(follower).clusterId())).as("an earlier term").isFalse();
    assertThat(check(follower, term, raft(follower).peerId(), raft(follower).clusterId()))
        .as("another member named as leader").isFalse();
    assertThat(check(follower, term, leaderId, raft(follower).clusterId() + 1)).as("another cluster").isFalse();
    assertThat(check(leader, term, leaderId, raft(leader).clusterId())).as("the leader itself does not follow").isFalse();
  }

  private static boolean check(int member, long term, String leaderId, long clusterId) {
    return ClientCalls.blockingUnaryCall(cluster.channel(member), LeaderForward.CHECK, io.grpc.CallOptions.DEFAULT
            .withDeadlineAfter(10, java.util.concurrent.TimeUnit.SECONDS),
        io.capstan.kvstore.proto.LeaderCheck.newBuilder().setTerm(term).setLeader(leaderId).setClusterId(clusterId).build())
        .getFollows();
  }

  @Test
  void followerWritesGoToTheLeaderAndTheFollowerServesThemAtOnce() {
    long sentBefore = raft(follower).forwardedCommands();
    long receivedBefore = raft(leader).forwardReceivedCommands();
    long sendsTimedBefore = raft(follower).forwardSends().getCount();
    long handledTimedBefore = raft(leader).forwardsHandled().getCount();
    long streamsBefore = raft(follower).forwardStreamsOpened();
    // The follower connects to the leader's client URL on its first write, which it forwards too
    // (it used to go through Ratis' client while the connection was made).
    Kv.put(cluster.channel(follower), "fw/connect", "v");
    assertThat(raft(follower).forwardedCommands() - sentBefore).as("the first write is forwarded").isEqualTo(1);
    List<String> missing = new ArrayList<>();
    for (int i = 0; i < 50; i++) {
      String key = "fw/ryw/" + i;
      long rev = Kv.put(cluster.channel(follower), key, "v" + i).getHeader().getRevision();
      // a serializable read on the same member, right after the answer: it must see the write
      var kv = Kv.get(cluster.channel(follower), key, true);
      if (kv.isEmpty() || kv.get().getModRevision() != rev) {
        missing.add(key);
      }
    }
    assertThat(missing).as("writes not yet visible on the member that acknowledged them").isEmpty();
    assertThat(raft(follower).forwardedCommands() - sentBefore).isGreaterThanOrEqualTo(50);
    assertThat(raft(leader).forwardReceivedCommands() - receivedBefore).isGreaterThanOrEqualTo(50);
    // each forward is timed on both sides (raft_forward_send, raft_forward_handle)
    assertThat(raft(follower).forwardSends().getCount() - sendsTimedBefore).isGreaterThanOrEqualTo(50);
    assertThat(raft(leader).forwardsHandled().getCount() - handledTimedBefore).isGreaterThanOrEqualTo(50);
    // all on one Calls stream (opened by this test's first write, or an earlier test's)
    assertThat(raft(follower).forwardStreamsOpened()).as("Calls streams the follower opened").isPositive();
    assertThat(raft(follower).forwardStreamsOpened() - streamsBefore).isLessThanOrEqualTo(1);
  }

  @Test
  void theLeaderAnswersEachForwardedCommandWithItsOwnResult() {
    Kv.put(cluster.channel(leader), "fw/each/b", "old");
    ForwardReply reply = forward(cluster.channel(leader), ForwardRequest.newBuilder()
        .setClusterId(raft(leader).clusterId())
        .setMemberId(raft(follower).memberId())
        .addCommands(put("fw/each/a", "1"))
        .addCommands(RaftCommand.newBuilder().setPut(PutRequest.newBuilder().setKey(bs("fw/each/c")).setValue(bs("x"))
            .setLease(0x7eadbeefL)))
        .addCommands(RaftCommand.newBuilder().setDeleteRange(DeleteRangeRequest.newBuilder().setKey(bs("fw/each/b"))
            .setPrevKv(true)))
        .build());
    assertThat(reply.getResultsList()).hasSize(3);
    ApplyResult put = reply.getResults(0);
    assertThat(put.hasPut()).isTrue();
    ApplyResult unknownLease = reply.getResults(1);
    assertThat(unknownLease.getError().getGrpcCode()).isEqualTo(Status.Code.NOT_FOUND.value());
    assertThat(unknownLease.getError().getMessage()).isEqualTo("etcdserver: requested lease not found");
    ApplyResult delete = reply.getResults(2);
    assertThat(delete.getDeleteRange().getDeleted()).isEqualTo(1);
    assertThat(Kv.str(delete.getDeleteRange().getPrevKvs(0).getValue())).isEqualTo("old");
    assertThat(delete.getDeleteRange().getHeader().getRevision())
        .isGreaterThan(put.getPut().getHeader().getRevision());
    assertThat(reply.getAppliedIndex()).isGreaterThan(0);
    assertThat(Kv.get(cluster.channel(leader), "fw/each/a", false)).isPresent();
    assertThat(Kv.get(cluster.channel(leader), "fw/each/c", false)).isEmpty();
  }

  @Test
  void aMemberThatIsNotTheLeaderRefusesAndProposesNothing() {
    ForwardRequest request = ForwardRequest.newBuilder()
        .setClusterId(raft(follower).clusterId())
        .setMemberId(raft(leader).memberId())
        .addCommands(put("fw/refused", "v"))
        .build();
    assertRefused(follower, request, Status.Code.FAILED_PRECONDITION, "capstan: not the leader");
    assertThat(Kv.get(cluster.channel(leader), "fw/refused", false)).isEmpty();
  }

  @Test
  void leaseQueriesThroughAFollowerAreAnsweredByTheLeaderOverTheForwardService() throws Exception {
    Channel ch = cluster.channel(follower);
    long id = LeaseGrpc.newBlockingStub(ch).leaseGrant(LeaseGrantRequest.newBuilder().setTTL(30).build()).getID();
    Kv.kv(ch).put(PutRequest.newBuilder().setKey(bs("fw/leased")).setValue(bs("v")).setLease(id).build());
    // the first query may go through Ratis' client while the channel to the leader connects
    await().atMost(Duration.ofSeconds(10)).until(() -> {
      long before = raft(follower).forwardedQueries();
      timeToLive(ch, id);
      return raft(follower).forwardedQueries() > before;
    });

    long before = raft(follower).forwardedQueries();
    LeaseTimeToLiveResponse ttl = timeToLive(ch, id);
    assertThat(ttl.getGrantedTTL()).isEqualTo(30);
    assertThat(ttl.getTTL()).isBetween(1L, 30L);
    assertThat(ttl.getKeysList()).containsExactly(bs("fw/leased"));

    var replies = new LinkedBlockingQueue<LeaseKeepAliveResponse>();
    var stream = LeaseGrpc.newStub(ch).leaseKeepAlive(new io.grpc.stub.StreamObserver<>() {
      @Override public void onNext(LeaseKeepAliveResponse r) { replies.add(r); }
      @Override public void onError(Throwable t) {}
      @Override public void onCompleted() {}
    });
    try {
      stream.onNext(LeaseKeepAliveRequest.newBuilder().setID(id).build());
      LeaseKeepAliveResponse renewed = replies.poll(10, TimeUnit.SECONDS);
      assertThat(renewed).isNotNull();
      assertThat(renewed.getID()).isEqualTo(id);
      assertThat(renewed.getTTL()).isEqualTo(30);
    } finally {
      stream.onCompleted();
    }
    assertThat(raft(follower).forwardedQueries()).isEqualTo(before + 2);
  }

  /**
   * A follower that forwarded a lease query counts towards the majority that must confirm the
   * leader's leadership after the answer was computed (so a 3-member leader asks no one): it
   * gives the answer only if it still follows that leader in the term the leader answered in.
   * A follower that has moved to a later term (it voted in an election meanwhile) or names
   * another leader refuses it, and the query is asked again.
   */
  @Test
  void aFollowerGivesAForwardedAnswerOnlyWhileItFollowsTheLeaderInTheAnswersTerm() {
    RaftNode f = raft(follower);
    String leaderName = cluster.member(leader).raft().name();
    long term = f.term();
    var answer = com.google.protobuf.ByteString.copyFromUtf8("answer");
    long refused = f.leaderQueriesUnconfirmed();
    assertThat(f.confirmedAnswer(io.capstan.kvstore.proto.LeaderQueryReply.newBuilder().setAnswer(answer).setTerm(term).build(),
        leaderName)).isEqualTo(answer.toByteArray());
    assertThatThrownBy(() -> f.confirmedAnswer(io.capstan.kvstore.proto.LeaderQueryReply.newBuilder().setAnswer(answer)
        .setTerm(term + 1).build(), leaderName)).as("an answer from a term it is not in").isInstanceOf(LeaderForward.Refused.class);
    assertThatThrownBy(() -> f.confirmedAnswer(io.capstan.kvstore.proto.LeaderQueryReply.newBuilder().setAnswer(answer)
        .setTerm(term).build(), f.name())).as("an answer from a member it does not follow").isInstanceOf(LeaderForward.Refused.class);
    assertThat(f.leaderQueriesUnconfirmed() - refused).isEqualTo(2);
  }

  /**
   * A lease's clock is the leader's, so a lease query is answered only once a majority, asked
   * after the answer was computed, confirms that the member still leads. A leader whose followers
   * are gone still believes it leads until its election timeout (3 s here) passes without their
   * heartbeat replies; in that window it used to answer from its own clock. It is the window a
   * leader paused past an election is in when it runs again (e2e PausedLeaderTest, where it
   * answered TTL 0 for a lease the next leader kept alive).
   */
  @Test
  void aLeaderWithoutAMajorityAnswersNoLeaseQuery() throws Exception {
    try (MiniCluster c = MiniCluster.builder().size(3).electionTimeout(Duration.ofSeconds(3)).start()) {
      int lead = c.waitForLeader(Duration.ofSeconds(60));
      awaitClientUrlsKnown(c, lead); // nothing more is committed unless asked
      Channel ch = c.channel(lead);
      long id = LeaseGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
          .leaseGrant(LeaseGrantRequest.newBuilder().setTTL(30).build()).getID();
      // answered while a majority follows; Ratis' ReadIndex now takes the commit index as confirmed
      // and answers later reads at it without asking anyone (RaftNode#readIndexRound)
      assertThat(timeToLive(ch, id).getTTL()).as("answered while a majority follows").isPositive();
      RaftNode node = c.member(lead).raft();
      long term = node.term();
      long withheld = node.leaderQueriesUnconfirmed();
      c.kill((lead + 1) % 3);
      c.kill((lead + 2) % 3);
      assertThat(node.isLeader()).as("still believes it leads right after its followers died").isTrue();

      assertThatThrownBy(() -> LeaseGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.SECONDS)
          .leaseTimeToLive(LeaseTimeToLiveRequest.newBuilder().setID(id).build()))
          .as("TimeToLive from a leader no majority follows").isInstanceOf(StatusRuntimeException.class);
      Object first = keepAliveOnce(ch, id, 1);
      assertThat(first instanceof LeaseKeepAliveResponse).as("a keep-alive from a leader no majority follows answered %s", first)
          .isFalse();
      // both questions were asked while it still led in the same term: the refusals were the check's
      assertThat(node.isLeader()).as("still believes it leads after both were refused").isTrue();
      assertThat(node.term()).isEqualTo(term);
      assertThat(node.leaderQueriesUnconfirmed() - withheld).as("answers withheld for want of a confirmed leadership").isPositive();
    }
  }

  /** One keep-alive of lease {@code id} on a stream of its own: its first reply or error, or null after {@code waitSeconds}. */
  private static Object keepAliveOnce(Channel ch, long id, long waitSeconds) throws InterruptedException {
    var replies = new LinkedBlockingQueue<Object>();
    var stream = LeaseGrpc.newStub(ch).leaseKeepAlive(new io.grpc.stub.StreamObserver<>() {
      @Override public void onNext(LeaseKeepAliveResponse r) { replies.add(r); }
      @Override public void onError(Throwable t) { replies.add(t); }
      @Override public void onCompleted() {}
    });
    try {
      stream.onNext(LeaseKeepAliveRequest.newBuilder().setID(id).build());
      return replies.poll(waitSeconds, TimeUnit.SECONDS);
    } finally {
      stream.onCompleted();
    }
  }

  private static LeaseTimeToLiveResponse timeToLive(Channel ch, long id) {
    return LeaseGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
        .leaseTimeToLive(LeaseTimeToLiveRequest.newBuilder().setID(id).setKeys(true).build());
  }

  @Test
  void onlyTheLeaderOfTheSameClusterRunsAForwardedQuery() {
    assertQueryRefused(follower, raft(follower).clusterId(), "capstan: not the leader");
    long other = raft(leader).clusterId() ^ 1;
    assertQueryRefused(leader, other, "capstan: cluster ID mismatch (this member is in cluster "
        + Long.toHexString(raft(leader).clusterId()) + ", the sender in " + Long.toHexString(other) + ")");
  }

  private static void assertQueryRefused(int member, long clusterId, String description) {
    LeaderQueryRequest request = LeaderQueryRequest.newBuilder().setClusterId(clusterId)
        .setQuery(Query.newBuilder().setLeaseKeepAlive(1)).build();
    assertThatThrownBy(() -> ClientCalls.blockingUnaryCall(cluster.channel(member), LeaderForward.QUERY,
        io.grpc.CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), request))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
          assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
          assertThat(e.getStatus().getDescription()).isEqualTo(description);
        });
  }

  @Test
  void aForwardFromAnotherClusterIsRefused() {
    ForwardRequest request = ForwardRequest.newBuilder()
        .setClusterId(raft(leader).clusterId() ^ 1)
        .addCommands(put("fw/other-cluster", "v"))
        .build();
    assertRefused(leader, request, Status.Code.FAILED_PRECONDITION, "capstan: cluster ID mismatch");
    assertThat(Kv.get(cluster.channel(leader), "fw/other-cluster", false)).isEmpty();
  }

  @Test
  void onlyCommandsThatClientRequestsMakeMayBeForwarded() {
    // lease expiry is the leader's own decision: nobody may propose it from outside
    ForwardRequest request = ForwardRequest.newBuilder()
        .setClusterId(raft(leader).clusterId())
        .addCommands(put("fw/with-expiry", "v"))
        .addCommands(RaftCommand.newBuilder().setLeaseExpire(LeaseExpire.newBuilder().addIds(1)))
        .build();
    assertRefused(leader, request, Status.Code.INVALID_ARGUMENT, "capstan: a LEASE_EXPIRE command cannot be forwarded");
    assertThat(Kv.get(cluster.channel(leader), "fw/with-expiry", false)).isEmpty();
  }

  @Test
  void aFollowersBatchesStayWithinTheRequestLimitTheLeaderAccepts() throws Exception {
    // 8 KiB requests: the leader's client port takes messages up to 8 KiB + 512 KiB, so a follower
    // that let its batches grow to 1 MiB had the larger forwards refused, and their writes failed
    try (MiniCluster c = MiniCluster.builder().maxRequestBytes(8 * 1024).start()) {
      // Every put must succeed in every attempt. That they all went through forwards holds only
      // while the follower stays a follower: on a loaded machine an election can make it leader
      // mid-wave (CI once counted 300 forwarded commands of 301 puts), and it then proposes the
      // rest itself. Such an attempt is run again, up to three in all.
      for (int attempt = 1; ; attempt++) {
        int lead = c.waitForLeader(Duration.ofSeconds(30));
        int fol = (lead + 1) % 3;
        RaftNode node = c.member(fol).raft();
        await("the follower forwards to the leader").atMost(Duration.ofSeconds(10)).until(() -> {
          long before = node.forwardedCommands();
          Kv.put(c.channel(fol), "fw/limit/connect", "v");
          return node.forwardedCommands() > before;
        });
        long term = node.term();
        long forwardedBefore = node.forwardedCommands();
        var stub = io.etcd.jetcd.api.KVGrpc.newFutureStub(c.channel(fol));
        String value = "x".repeat(6 * 1024);
        // Two waves of 150: each queues ~900 KiB on the follower (more than the leader accepts in
        // one message), and its last put waits for 150 entries one after another, well inside the
        // 7 s request timeout even on a loaded machine (one wave of 300 once ran out of it there).
        for (int wave = 0; wave < 2; wave++) {
          List<com.google.common.util.concurrent.ListenableFuture<io.etcd.jetcd.api.PutResponse>> puts = new ArrayList<>();
          for (int i = 0; i < 150; i++) {
            puts.add(stub.put(PutRequest.newBuilder().setKey(bs("fw/limit/" + attempt + "/" + wave + "/" + i)).setValue(bs(value)).build()));
          }
          for (var p : puts) {
            assertThat(p.get(30, java.util.concurrent.TimeUnit.SECONDS).getHeader().getRevision()).isGreaterThan(0);
          }
        }
        if (node.term() == term) {
          assertThat(node.forwardedCommands() - forwardedBefore).as("commands forwarded by the follower").isGreaterThanOrEqualTo(300);
          return;
        }
        assertThat(attempt).as("attempts in which the term changed (term now %d)", node.term()).isLessThan(3);
      }
    }
  }

  /**
   * A write that reaches a member during an election waits for the new leader and is forwarded to
   * it (or proposed, if the member won), not handed to Ratis' client.
   */
  @Test
  void aWriteDuringAnElectionWaitsForTheLeaderInsteadOfGoingThroughRatisClient() throws Exception {
    try (MiniCluster c = MiniCluster.start(3)) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      int survivor = (lead + 1) % 3;
      int other = (lead + 2) % 3;
      awaitClientUrlsKnown(c, survivor);
      c.kill(lead);
      c.kill(other);
      RaftNode node = c.member(survivor).raft();
      await("the survivor knows no leader").atMost(Duration.ofSeconds(30)).until(() -> !node.hasLeader());
      long viaClient = node.clientProposals();
      var put = io.etcd.jetcd.api.KVGrpc.newFutureStub(c.channel(survivor)).withDeadlineAfter(20, java.util.concurrent.TimeUnit.SECONDS)
          .put(PutRequest.newBuilder().setKey(bs("fw/election/during")).setValue(bs("v")).build());
      c.restart(other);
      assertThat(put.get(30, java.util.concurrent.TimeUnit.SECONDS).getHeader().getRevision()).isGreaterThan(0);
      assertThat(node.clientProposals() - viaClient).as("entries sent through Ratis' client").isZero();
    }
  }

  /**
   * A write that reaches a follower right after its leader died, before the follower's election
   * timeout has passed, waits for the next leader (the dead one's client port refuses; the
   * follower waits an election timeout, and longer while Raft does not hear from that leader)
   * instead of going through Ratis' client, which may spend seconds on the dead leader first
   * (with this test's timing it failed the write after 70 attempts). A 3 s election timeout (heartbeats every 0.75 s, the leader counts as dead after
   * 1.125 s, the follower stands for election after 1.5 s at the earliest) makes the write arrive
   * before the follower notices by itself, and leaves the next election well inside the write's
   * 7 s request timeout.
   */
  @Test
  void aWriteRightAfterTheLeaderDiedWaitsForTheNextLeader() throws Exception {
    try (MiniCluster c = MiniCluster.builder().size(3).electionTimeout(Duration.ofSeconds(3)).start()) {
      int lead = c.waitForLeader(Duration.ofSeconds(60));
      int follower = (lead + 1) % 3;
      awaitClientUrlsKnown(c, follower);
      RaftNode node = c.member(follower).raft();
      long deadLeader = node.leaderMemberId();
      long viaClient = node.clientProposals();
      c.kill(lead);
      await("the leader silent to the follower's Raft for long enough").atMost(Duration.ofSeconds(10))
          .pollInterval(Duration.ofMillis(10)).until(() -> node.leaderSilentFor() >= node.leaderSilentMs());
      var put = io.etcd.jetcd.api.KVGrpc.newFutureStub(c.channel(follower)).withDeadlineAfter(30, java.util.concurrent.TimeUnit.SECONDS)
          .put(PutRequest.newBuilder().setKey(bs("fw/dead-leader")).setValue(bs("v")).build());
      boolean sentBeforeTheFollowerNoticed = node.leaderMemberId() == deadLeader;
      assertThat(put.get(40, java.util.concurrent.TimeUnit.SECONDS).getHeader().getRevision()).isGreaterThan(0);
      assertThat(sentBeforeTheFollowerNoticed).as("the write reached the follower while it still had the dead leader").isTrue();
      assertThat(node.clientProposals() - viaClient).as("entries sent through Ratis' client").isZero();
    }
  }

  /**
   * A leader that Raft keeps hearing from but whose client URL a follower cannot reach (here it
   * advertises a port nobody listens on) gets that follower's writes through Ratis' client, once
   * the follower has heard it for an election timeout after the first refusal: the write
   * succeeds, later than that timeout and well before its deadline.
   */
  @Test
  void aLiveLeaderWhoseClientUrlIsUnreachableGetsWritesThroughRatisClient() throws Exception {
    try (MiniCluster c = withUnreachableLeader()) {
      int follower = 1;
      RaftNode node = c.member(follower).raft();
      long viaClient = node.clientProposals();
      long start = System.nanoTime();
      var reply = io.etcd.jetcd.api.KVGrpc.newBlockingStub(c.channel(follower)).withDeadlineAfter(20, TimeUnit.SECONDS)
          .put(PutRequest.newBuilder().setKey(bs("fw/unreachable-leader")).setValue(bs("v")).build());
      Duration took = Duration.ofNanos(System.nanoTime() - start);
      assertThat(reply.getHeader().getRevision()).isGreaterThan(0);
      assertThat(c.leaderIndex()).as("the leader throughout").isZero();
      assertThat(node.clientProposals() - viaClient).as("entries sent through Ratis' client").isEqualTo(1);
      assertThat(took).as("time the write took").isGreaterThanOrEqualTo(c.config(follower).electionTimeout())
          .isLessThan(c.config(follower).requestTimeout());
    }
  }

  /**
   * Lease queries through a follower that cannot reach the leader's client URL go through Ratis'
   * client and are answered: a keep-alive renews, a TimeToLive reports the lease.
   */
  @Test
  void leaseQueriesReachALeaderWhoseClientUrlIsUnreachableThroughRatisClient() throws Exception {
    try (MiniCluster c = withUnreachableLeader()) {
      int follower = 1;
      Channel ch = c.channel(follower);
      long id = LeaseGrpc.newBlockingStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS)
          .leaseGrant(LeaseGrantRequest.newBuilder().setTTL(30).build()).getID();
      long forwarded = c.member(follower).raft().forwardedQueries();
      for (int i = 0; i < 3; i++) {
        long start = System.nanoTime();
        assertThat(timeToLive(ch, id).getTTL()).as("TimeToLive %d", i).isBetween(1L, 30L);
        Object renewed = keepAliveOnce(ch, id, 15);
        assertThat(renewed).as("keep-alive %d", i).isInstanceOf(LeaseKeepAliveResponse.class);
        assertThat(((LeaseKeepAliveResponse) renewed).getTTL()).isEqualTo(30);
        System.out.printf("lease queries through Ratis' client, round %d: %d ms%n", i, (System.nanoTime() - start) / 1_000_000);
      }
      assertThat(c.leaderIndex()).as("the leader throughout").isZero();
      assertThat(c.member(follower).raft().forwardedQueries()).as("queries sent over the Forward service").isEqualTo(forwarded);
    }
  }

  /**
   * Right after a leader change, a follower's first lease query waits a moment for a connection to
   * the new leader's client port and goes over the Forward service, as its first write does,
   * rather than through Ratis' client (which, after a leader change, may first spend seconds on a
   * stale connection). Fails when {@link RaftNode#leaderQuery} takes Ratis' client whenever the
   * connection is not up yet.
   */
  @Test
  void aFollowersFirstLeaseQueryToANewLeaderWaitsForItsConnection() throws Exception {
    try (MiniCluster c = MiniCluster.start(3)) {
      int first = c.waitForLeader(Duration.ofSeconds(30));
      for (int m = 0; m < 3; m++) {
        awaitClientUrlsKnown(c, m);
      }
      // granted on the leader itself: no member opens a forward connection for it
      long id = LeaseGrpc.newBlockingStub(c.channel(first)).withDeadlineAfter(20, TimeUnit.SECONDS)
          .leaseGrant(LeaseGrantRequest.newBuilder().setTTL(60).build()).getID();
      c.kill(first);
      int next = c.waitForLeader(Duration.ofSeconds(30));
      int follower = 3 - first - next;
      RaftNode f = c.member(follower).raft();
      long nextId = c.member(next).raft().memberId();
      await("the follower follows the new leader").atMost(Duration.ofSeconds(30))
          .until(() -> f.leaderMemberId() == nextId);
      long forwarded = f.forwardedQueries();
      assertThat(timeToLive(c.channel(follower), id).getTTL()).isBetween(1L, 60L);
      assertThat(f.forwardedQueries() - forwarded).as("queries sent over the Forward service").isEqualTo(1);
    }
  }

  /**
   * A 3-member cluster led by m0, which advertises a client URL nobody listens on; member 1 knows
   * every member's client URL.
   */
  private static MiniCluster withUnreachableLeader() throws Exception {
    String unreachable = "http://127.0.0.1:" + MiniCluster.freePort();
    MiniCluster c = MiniCluster.builder().size(3).advertiseClientUrl(0, unreachable).start();
    try {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      if (lead != 0) {
        c.member(lead).raft().moveLeader(c.member(0).raft().memberId()).get(30, TimeUnit.SECONDS);
        await("m0 leads").atMost(Duration.ofSeconds(30)).until(() -> c.leaderIndex() == 0);
      }
      awaitClientUrlsKnown(c, 1);
      return c;
    } catch (Exception | AssertionError e) {
      c.close();
      throw e;
    }
  }

  /**
   * Waits until {@code member} knows every member's client URL (members publish them once a
   * leader is up): a leader whose URL a follower does not know is reached through Ratis' client.
   */
  private static void awaitClientUrlsKnown(MiniCluster c, int member) {
    await("every member's client URL published").atMost(Duration.ofSeconds(30)).until(() ->
        io.etcd.jetcd.api.ClusterGrpc.newBlockingStub(c.channel(member))
            .memberList(io.etcd.jetcd.api.MemberListRequest.getDefaultInstance()).getMembersList().stream()
            .filter(m -> m.getClientURLsCount() > 0).count() == 3);
  }
}
