package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.common.util.concurrent.ListenableFuture;
import com.google.protobuf.ByteString;
import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/**
 * Followers apply a write without waiting for a later entry or a heartbeat. The election timeout is
 * long here (heartbeats every 1 s), so a follower that learned commits only from the next
 * AppendEntries would show a lone write after up to a second; every write must show on both
 * followers well before that. Fails with Ratis' commit-metadata entries off and no {@link
 * CommitBroadcast}.
 */
class CommitBroadcastTest {

  @Test
  void aLoneWriteIsAppliedOnEveryFollowerPromptly() {
    try (MiniCluster c = MiniCluster.builder().electionTimeout(Duration.ofSeconds(4)).start()) {
      int leader = c.waitForLeader(Duration.ofSeconds(30));
      List<Integer> followers = new ArrayList<>(List.of(0, 1, 2));
      followers.remove(Integer.valueOf(leader));
      Kv.put(c.channel(leader), "cb/warm", "v"); // the first write of a term may wait for the leader to be ready
      // Each write waits until both followers show the one before, so no later entry is in flight
      // that could carry its commit index to them.
      for (int i = 0; i < 5; i++) {
        String key = "cb/" + i;
        Kv.put(c.channel(leader), key, "v" + i);
        long start = System.nanoTime();
        for (int f : followers) {
          while (Kv.get(c.channel(f), key, true).isEmpty()) {
            assertThat(Duration.ofNanos(System.nanoTime() - start))
                .as("write %d not yet applied on follower %d", i, f).isLessThan(Duration.ofMillis(400));
            Thread.onSpinWait();
          }
        }
      }
    }
  }

  /**
   * The followers hear of a commit before the leader has applied it: with the leader's apply thread
   * held before it applies a write, the write is committed but not applied there, and both
   * followers must learn of its commit within 200 ms. A periodic heartbeat comes every second here,
   * so three writes in a row arriving by that alone would be a 1-in-100 chance. Fails with {@code
   * -Dcapstan.raft.commit-news=apply}, where the news waits for the leader's apply (as on Ratis'
   * gRPC transport, where this test is skipped).
   */
  @Test
  void followersHearOfACommitBeforeTheLeaderAppliesIt() throws Exception {
    assumeTrue(CommitBroadcast.nettyTransport(),
        "on Ratis' gRPC transport (not the default) the leader sends commit news once it has applied the entry");
    try (MiniCluster c = MiniCluster.builder().electionTimeout(Duration.ofSeconds(4)).start()) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      RaftNode leader = c.member(lead).raft();
      List<RaftNode> followers = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        if (i != lead) {
          followers.add(c.member(i).raft());
        }
      }
      Kv.put(c.channel(lead), "cb/warm", "v");
      for (int i = 0; i < 3; i++) {
        ListenableFuture<PutResponse> put;
        try (ApplyHold hold = ApplyHold.before(leader.stateMachine())) {
          long before = leader.lastLogIndex();
          put = put(c, lead, "cb/unapplied/" + i);
          Awaitility.await("write " + i + " in the leader's log").atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(1))
              .until(() -> leader.lastLogIndex() > before);
          long index = leader.lastLogIndex();
          long start = System.nanoTime();
          for (RaftNode f : followers) {
            while (f.commitIndex() < index) {
              assertThat(Duration.ofNanos(System.nanoTime() - start))
                  .as("follower %s learning of the commit of index %d", f.division().getId(), index).isLessThan(Duration.ofMillis(200));
              Thread.onSpinWait();
            }
          }
          assertThat(leader.appliedIndex()).as("the leader's applied index").isLessThan(index);
        }
        assertThat(put.get(20, TimeUnit.SECONDS).getHeader().getRevision()).isPositive();
      }
    }
  }

  private static ListenableFuture<PutResponse> put(MiniCluster c, int member, String key) {
    return KVGrpc.newFutureStub(c.channel(member)).withDeadlineAfter(20, TimeUnit.SECONDS)
        .put(PutRequest.newBuilder().setKey(ByteString.copyFromUtf8(key)).setValue(ByteString.copyFromUtf8("v")).build());
  }

  @Test
  void anUnknownTransportIsRefusedByName() {
    assertThat(CommitBroadcast.netty("netty")).isTrue();
    assertThat(CommitBroadcast.netty("grpc")).isFalse();
    assertThatThrownBy(() -> CommitBroadcast.netty("udp"))
        .hasMessage("capstan.raft.transport must be netty or grpc, not \"udp\"");
    assertThat(CommitBroadcast.commitNewsAtCommit("commit")).isTrue();
    assertThat(CommitBroadcast.commitNewsAtCommit("apply")).isFalse();
    assertThatThrownBy(() -> CommitBroadcast.commitNewsAtCommit("later"))
        .hasMessage("capstan.raft.commit-news must be commit or apply, not \"later\"");
  }

  /** The leader reports a follower that stopped answering, and reports it back once it answers. */
  @Test
  void theLeaderReportsASilentFollowerAndItsReturn() {
    try (MiniCluster c = MiniCluster.start(3)) {
      int leader = c.waitForLeader(Duration.ofSeconds(30));
      int follower = (leader + 1) % 3;
      Kv.put(c.channel(leader), "sf/1", "v");
      assertThat(c.member(leader).raft().silentFollowers()).isZero();
      c.kill(follower);
      Awaitility.await("the leader reports the killed follower").atMost(Duration.ofSeconds(10))
          .until(() -> c.member(leader).raft().silentFollowers() == 1);
      assertThat(c.member((leader + 2) % 3).raft().silentFollowers()).as("a follower reports nothing").isZero();
      c.restart(follower);
      Awaitility.await("the leader sees the follower answer again").atMost(Duration.ofSeconds(60))
          .until(() -> c.member(leader).raft().silentFollowers() == 0);
    }
  }
}
