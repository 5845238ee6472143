package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * A member whose apply thread fails loses its Raft server (Ratis closes it); the member must say
 * so ({@link RaftNode#onRaftLost}, which makes the kvstore process exit) rather than go on
 * serving a state that no longer moves.
 */
class RaftLostTest {
  @Test
  void aMemberWhoseApplyFailsReportsItsRaftServerLostOnceWhileTheOthersGoOn() throws Exception {
    try (MiniCluster c = MiniCluster.start(3)) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      int f = (lead + 1) % 3;
      Kv.put(c.channel(lead), "lost/warm", "v");
      RaftNode follower = c.member(f).raft();
      List<String> reasons = new CopyOnWriteArrayList<>();
      follower.onRaftLost(reasons::add);
      assertThat(follower.raftRunning()).isTrue();

      // the follower's next apply throws on Ratis' apply thread, as a bug or a broken disk would
      KvStateMachine sm = follower.stateMachine();
      Runnable after = sm.afterApply();
      AtomicBoolean fail = new AtomicBoolean(true);
      sm.setAfterApply(() -> {
        after.run();
        if (fail.get() && Thread.currentThread().getName().contains("StateMachineUpdater")) {
          throw new IllegalStateException("injected: the apply failed");
        }
      });
      Kv.put(c.channel(lead), "lost/next", "v");
      await("the follower reports its Raft server lost").atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(50))
          .until(() -> !reasons.isEmpty());
      fail.set(false);
      assertThat(follower.raftRunning()).isFalse();
      assertThat(reasons.get(0)).startsWith("its Raft server is ");

      // the other two go on; the report came once, and a late listener hears it at once
      Kv.put(c.channel(lead), "lost/after", "v");
      assertThat(Kv.get(c.channel(lead), "lost/after", false)).isPresent();
      assertThat(reasons).hasSize(1);
      List<String> late = new CopyOnWriteArrayList<>();
      follower.onRaftLost(late::add);
      assertThat(late).containsExactly(reasons.get(0));
    }
  }
}
