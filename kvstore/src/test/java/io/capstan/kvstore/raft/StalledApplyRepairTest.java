package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.ratis.server.raftlog.RaftLog;
import org.apache.ratis.statemachine.SnapshotInfo;
import org.apache.ratis.statemachine.impl.SimpleStateMachineStorage;
import org.apache.ratis.util.MD5FileUtil;
import org.junit.jupiter.api.Test;

/**
 * A member left as Ratis leaves it when it loses the reload of an installed snapshot (the
 * snapshot's files in place, the log's entries up to it dropped, the applied index below them,
 * no reload to come) reloads the snapshot itself and applies again ({@link StalledApplyRepair}).
 */
class StalledApplyRepairTest {
  @Test
  void aMemberWhoseSnapshotReloadWasLostReloadsItAndAppliesAgain() throws Exception {
    // small segments, so that dropping the entries a snapshot covers removes the next one to apply
    try (MiniCluster c = MiniCluster.builder().snapshotCount(50).logSegmentBytes(4 * 1024).start()) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      int f = (lead + 1) % 3;
      Kv.put(c.channel(lead), "lost/warm", "v");
      RaftNode follower = c.member(f).raft();
      KvStateMachine sm = follower.stateMachine();
      RaftLog log = follower.division().getRaftLog();

      // 1. the follower's updater stops after the next entry it applies; its log keeps growing
      try (ApplyHold hold = ApplyHold.on(sm)) {
        for (int i = 0; i < 200; i++) {
          Kv.put(c.channel(lead), "lost/" + i, "v" + i);
        }
        long applied = sm.getLastAppliedTermIndex().getIndex();

        // 2. a snapshot of the leader's state at the follower's last entry becomes the
        // follower's, and its log drops the entries the snapshot covers, as an installation
        // does; the reload that should follow is lost
        RaftLog leaderLog = c.member(lead).raft().division().getRaftLog();
        KvStateMachine leaderSm = c.member(lead).raft().stateMachine();
        await("the follower has every entry and the leader applied them").atMost(Duration.ofSeconds(10)).until(() ->
            log.getLastEntryTermIndex().equals(leaderLog.getLastEntryTermIndex())
                && leaderSm.getLastAppliedTermIndex().equals(leaderLog.getLastEntryTermIndex())
                && log.getLastCommittedIndex() == leaderLog.getLastEntryTermIndex().getIndex());
        SnapshotInfo snapshot = leaderSm.snapshotNow();
        assertThat(snapshot.getTermIndex()).isEqualTo(log.getLastEntryTermIndex());
        assertThat(snapshot.getIndex()).isGreaterThan(applied + 1);
        File copy = ((SimpleStateMachineStorage) sm.getStateMachineStorage())
            .getSnapshotFile(snapshot.getTerm(), snapshot.getIndex());
        Files.copy(snapshot.getFiles().get(0).getPath(), copy.toPath(), StandardCopyOption.REPLACE_EXISTING);
        MD5FileUtil.computeAndSaveMd5ForFile(copy);
        log.onSnapshotInstalled(snapshot.getIndex()).get(10, TimeUnit.SECONDS);
        assertThat(log.get(applied + 1)).as("the next entry to apply is gone").isNull();
        assertThat(sm.getLastAppliedTermIndex().getIndex()).isEqualTo(applied);
      }

      // 3. the follower reloads the snapshot and applies what came after it
      Kv.put(c.channel(lead), "lost/after", "done");
      try {
        await("the follower applies again").atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(100))
            .until(() -> Kv.get(c.channel(f), "lost/after", true).isPresent());
      } catch (RuntimeException | AssertionError e) {
        // a member that cannot apply cannot stop either (Ratis waits for it to apply all that is
        // committed): reload it here, so that the cluster closes and the failure is reported
        sm.pause();
        org.apache.ratis.server.impl.StateMachineReload.reload(follower.division());
        throw e;
      }
      assertThat(follower.applyRepairs()).isEqualTo(1);
      assertThat(Kv.get(c.channel(f), "lost/199", true)).get()
          .extracting(kv -> kv.getValue().toStringUtf8()).isEqualTo("v199");
      // and its log takes later entries: the repair reloads the state machine only (telling the
      // log of the snapshot again, now that it holds later entries, broke its writer)
      for (int i = 0; i < 20; i++) {
        Kv.put(c.channel(lead), "lost/later", "l" + i);
      }
      await("the follower applies later entries").atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(100))
          .until(() -> Kv.get(c.channel(f), "lost/later", true)
              .map(kv -> kv.getValue().toStringUtf8().equals("l19")).orElse(false));
    }
  }
}
