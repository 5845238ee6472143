package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.ratis.protocol.RaftPeerId;
import org.junit.jupiter.api.Test;

/**
 * A write the leader appended, and a majority stored, when it stepped down is answered by Ratis
 * with NotLeaderException although the next leader commits it. The kvstore must neither apply it
 * a second time nor call it failed: the put is applied once and its client is told the revision.
 */
class SteppedDownLeaderTest {
  @Test
  void aWritePendingWhenItsLeaderStepsDownIsAppliedOnceAndAnswered() throws Exception {
    try (MiniCluster c = MiniCluster.start(3)) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      int next = (lead + 1) % 3;
      KVGrpc.KVBlockingStub kv = KVGrpc.newBlockingStub(c.channel(lead)).withDeadlineAfter(20, TimeUnit.SECONDS);
      kv.put(PutRequest.newBuilder().setKey(ByteString.copyFromUtf8("sd/warm")).setValue(ByteString.copyFromUtf8("v")).build());
      RaftNode leader = c.member(lead).raft();
      KvStateMachine sm = leader.stateMachine();

      // the leader's apply thread stops after its next apply: what it commits after that stays
      // pending, unanswered, until it steps down
      try (ApplyHold hold = ApplyHold.on(sm)) {
        var first = KVGrpc.newFutureStub(c.channel(lead)).withDeadlineAfter(20, TimeUnit.SECONDS)
            .put(PutRequest.newBuilder().setKey(ByteString.copyFromUtf8("sd/first")).setValue(ByteString.copyFromUtf8("1")).build());
        var pending = KVGrpc.newFutureStub(c.channel(lead)).withDeadlineAfter(20, TimeUnit.SECONDS)
            .put(PutRequest.newBuilder().setKey(ByteString.copyFromUtf8("sd/pending")).setValue(ByteString.copyFromUtf8("2")).build());
        RaftNode successor = c.member(next).raft();
        await("both writes reached the next leader's log").atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(20))
            .until(() -> successor.division().getRaftLog().getLastCommittedIndex()
                >= leader.division().getRaftLog().getNextIndex() - 1 && !first.isDone() && !pending.isDone());
        leader.transferLeadership(RaftPeerId.valueOf(c.config(next).name()), 10_000);
        await("the leadership moved").atMost(Duration.ofSeconds(10)).until(() -> successor.isLeaderReady());
        hold.release();

        PutResponse p = pending.get(20, TimeUnit.SECONDS);
        PutResponse f = first.get(20, TimeUnit.SECONDS);
        RangeResponse stored = KVGrpc.newBlockingStub(c.channel(next)).withDeadlineAfter(10, TimeUnit.SECONDS)
            .range(RangeRequest.newBuilder().setKey(ByteString.copyFromUtf8("sd/")).setRangeEnd(ByteString.copyFromUtf8("sd0")).build());
        for (var kvs : stored.getKvsList()) {
          assertThat(kvs.getVersion()).as(kvs.getKey().toStringUtf8() + " applied once").isEqualTo(1);
        }
        assertThat(stored.getKvsList()).extracting(k -> k.getKey().toStringUtf8()).containsExactly("sd/first", "sd/pending", "sd/warm");
        assertThat(stored.getKvsList().get(1).getModRevision()).as("the revision sd/pending's client was told")
            .isEqualTo(p.getHeader().getRevision());
        assertThat(stored.getKvsList().get(0).getModRevision()).isEqualTo(f.getHeader().getRevision());
        assertThat(stored.getHeader().getRevision()).as("no write after them").isEqualTo(p.getHeader().getRevision());
        assertThat(leader.resentCalls()).as("entries the old leader sent again as the same call").isPositive();
      }
    }
  }
}
