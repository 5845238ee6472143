package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.capstan.kvstore.mvcc.ClusterMembers;
import io.capstan.kvstore.mvcc.MvccStore;
import io.capstan.kvstore.mvcc.StoreSnapshot;
import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.RangeRequest;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.ratis.statemachine.SnapshotInfo;
import org.junit.jupiter.api.Test;

/**
 * A Raft snapshot is written off the apply thread ({@link SnapshotWriter}): writes go on while it
 * is written, nothing is registered or purged until it is complete, and then it is, with no further
 * write needed; the file holds the state at the index it is named after.
 */
class BackgroundSnapshotTest {
  private static final int SNAPSHOT_COUNT = 100;

  @Test
  void writesGoOnWhileASnapshotIsWrittenAndItIsTakenWhenDone() throws Exception {
    try (MiniCluster c = MiniCluster.builder().snapshotCount(SNAPSHOT_COUNT).logSegmentBytes(4 * 1024).start()) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      RaftNode leader = c.member(lead).raft();
      KvStateMachine sm = leader.stateMachine();
      CountDownLatch writing = new CountDownLatch(1);
      CountDownLatch release = new CountDownLatch(1);
      sm.snapshots().setBeforeWrite(() -> {
        writing.countDown();
        try {
          release.await(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      });
      int puts = 0;
      try {
        while (writing.getCount() > 0 && puts < 10 * SNAPSHOT_COUNT) {
          Kv.put(c.channel(lead), "bg/" + puts, "v" + puts);
          puts++;
        }
        assertThat(writing.await(10, TimeUnit.SECONDS)).as("the leader started writing a snapshot").isTrue();

        // the writer is held: more than another snapshot's worth of writes still complete
        for (int i = 0; i < 2 * SNAPSHOT_COUNT; i++, puts++) {
          Kv.put(c.channel(lead), "bg/" + puts, "v" + puts); // 10 s deadline each
        }
        assertThat(sm.getStateMachineStorage().getLatestSnapshot()).as("nothing registered before the file is complete").isNull();
        assertThat(leader.firstLogIndex()).as("nor the log purged").isLessThanOrEqualTo(1);
      } finally {
        release.countDown();
      }

      // registered and the log purged without another write: the writer asks Ratis to take it
      long first = await("the leader registers the snapshot and purges its log").atMost(Duration.ofSeconds(20))
          .until(leader::firstLogIndex, f -> f > 1);
      SnapshotInfo snapshot = sm.getStateMachineStorage().getLatestSnapshot();
      assertThat(snapshot.getIndex()).isGreaterThanOrEqualTo(SNAPSHOT_COUNT - 1).isGreaterThanOrEqualTo(first - 1);

      // the file holds the leader's state at the revision it names, though writes went on meanwhile
      MvccStore loaded = new MvccStore();
      StoreSnapshot.Position at = StoreSnapshot.load(snapshot.getFiles().get(0).getPath(), loaded, new ClusterMembers());
      assertThat(at.index()).isEqualTo(snapshot.getIndex());
      assertThat(at.revision()).isLessThan(c.member(lead).store().currentRevision());
      RangeRequest all = RangeRequest.newBuilder().setKey(Kv.bs("\0")).setRangeEnd(Kv.bs("\0")).build();
      assertThat(loaded.range(all).build().getKvsList())
          .isEqualTo(c.member(lead).store().range(all.toBuilder().setRevision(at.revision()).build()).build().getKvsList())
          .isNotEmpty();
    }
  }

  /**
   * Ratis asks for the latest snapshot before each AppendEntries; a member without one answers
   * from memory ({@link SnapshotWriter.Storage}) instead of listing its snapshot directory each
   * time, and still sees the first snapshot once it has one.
   */
  @Test
  void aMemberWithoutASnapshotDoesNotListItsDirectoryAtEachAppend() throws Exception {
    try (MiniCluster c = MiniCluster.builder().start()) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      for (int i = 0; i < 200; i++) {
        Kv.put(c.channel(lead), "nolist/" + i, "v");
      }
      for (int m = 0; m < c.size(); m++) {
        KvStateMachine sm = c.member(m).raft().stateMachine();
        assertThat(sm.getLatestSnapshot()).isNull();
        // 200 puts: two AppendEntries to each follower a put, each asking (Ratis listed the directory each time)
        assertThat(sm.snapshots().storage().listings.get()).as("member %d's listings of its snapshot directory", m)
            .isLessThan(10);
      }
      KvStateMachine leader = c.member(lead).raft().stateMachine();
      SnapshotInfo taken = leader.snapshotNow();
      assertThat(taken).isNotNull();
      assertThat(leader.getLatestSnapshot()).as("the snapshot taken, after \"none\" was remembered").isNotNull()
          .extracting(SnapshotInfo::getIndex).isEqualTo(taken.getIndex());
    }
  }

  /** A crash while a snapshot was being written leaves its temporary file; the next start removes it. */
  @Test
  void aSnapshotLeftHalfWrittenIsRemovedAtStart() throws Exception {
    try (MiniCluster c = MiniCluster.builder().start()) {
      c.waitForLeader(Duration.ofSeconds(30));
      java.nio.file.Path dir = ((org.apache.ratis.statemachine.impl.SimpleStateMachineStorage)
          c.member(0).raft().stateMachine().getStateMachineStorage()).getSnapshotFile(1, 1).toPath().getParent();
      c.kill(0);
      java.nio.file.Path half = dir.resolve("snapshot.3_12345" + StoreSnapshot.TMP_SUFFIX);
      java.nio.file.Path unrelated = dir.resolve("notes" + StoreSnapshot.TMP_SUFFIX);
      java.nio.file.Files.write(half, new byte[100]);
      java.nio.file.Files.write(unrelated, new byte[1]);
      c.restart(0);
      assertThat(half).doesNotExist();
      assertThat(unrelated).exists();
    }
  }
}
