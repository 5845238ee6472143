package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.ratis.statemachine.impl.SimpleStateMachineStorage;
import org.junit.jupiter.api.Test;

/**
 * A member reloading an installed snapshot while a second installation replaces its snapshot
 * directory (Ratis moves the old directory aside, the new one in, and deletes the old) loads
 * what is there once the new directory is in place, and goes on applying: before, the failed
 * load stopped Ratis' apply thread and Ratis closed the member's Raft server.
 */
class SnapshotDirectorySwapTest {
  @Test
  void aReloadWhoseSnapshotDirectoryIsReplacedMeanwhileLoadsTheNewOneAndAppliesOn() throws Exception {
    try (MiniCluster c = MiniCluster.builder().snapshotCount(1_000_000).start()) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      int f = (lead + 1) % 3;
      for (int i = 0; i < 20; i++) {
        Kv.put(c.channel(lead), "swap/" + i, "v" + i);
      }
      RaftNode follower = c.member(f).raft();
      KvStateMachine sm = follower.stateMachine();
      await("the follower applied every write").atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(20))
          .until(() -> Kv.get(c.channel(f), "swap/19", true).isPresent());
      File snapshot = sm.snapshotNow().getFiles().get(0).getPath().toFile();
      Path dir = snapshot.getParentFile().toPath();
      Path aside = dir.resolveSibling(dir.getFileName() + ".aside");

      // the first load finds the directory gone; it is back (with the same snapshot) 300 ms later
      AtomicInteger loads = new AtomicInteger();
      CompletableFuture<Void> back = new CompletableFuture<>();
      sm.setBeforeSnapshotLoad(() -> {
        if (loads.incrementAndGet() == 1) {
          try {
            Files.move(dir, aside);
          } catch (java.io.IOException e) {
            back.completeExceptionally(e);
            return;
          }
          CompletableFuture.delayedExecutor(300, TimeUnit.MILLISECONDS).execute(() -> {
            try {
              Files.move(aside, dir);
              back.complete(null);
            } catch (java.io.IOException e) {
              back.completeExceptionally(e);
            }
          });
        }
      });
      // what Ratis does once an installation is complete: pause, then have the updater reload
      sm.pause();
      org.apache.ratis.server.impl.StateMachineReload.reload(follower.division());
      back.get(10, TimeUnit.SECONDS);

      Kv.put(c.channel(lead), "swap/after", "yes");
      await("the follower applies again").atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(50))
          .until(() -> Kv.get(c.channel(f), "swap/after", true).isPresent());
      assertThat(follower.raftRunning()).as("the follower's Raft server runs").isTrue();
      assertThat(loads.get()).as("loads tried").isGreaterThan(1);
      assertThat(follower.snapshotReloadRetries()).isEqualTo(loads.get() - 1L);
      assertThat(follower.snapshotsInstalled()).isEqualTo(1);
      assertThat(Kv.get(c.channel(f), "swap/19", true)).get().extracting(kv -> kv.getValue().toStringUtf8()).isEqualTo("v19");
      assertThat(((SimpleStateMachineStorage) sm.getStateMachineStorage()).getLatestSnapshot().getIndex())
          .isEqualTo(snapshot.getName().contains("_") ? Long.parseLong(snapshot.getName().substring(snapshot.getName().lastIndexOf('_') + 1)) : -1);
    }
  }
}
