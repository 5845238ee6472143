package io.capstan.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * etcd's {@code --auto-compaction-mode}/{@code --auto-compaction-retention} on the built
 * distribution, seen through the stock etcdctl: history older than the retention goes away on its
 * own; bad values stop the member with the reason.
 */
class AutoCompactionTest {
  @Test
  void periodicRetentionCompactsHistoryOlderThanItOnItsOwn() {
    try (DistCluster c = new DistCluster(3).withArgs("--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s")) {
      c.start();
      Etcdctl etcdctl = new Etcdctl(c.endpoints());
      long r1 = Long.parseLong(etcdctl.run("put", "ac/k", "1", "-w", "json").ok().out().replaceAll("(?s).*\"revision\":(\\d+).*", "$1"));
      etcdctl.run("put", "ac/k", "2").ok();
      assertThat(etcdctl.run("get", "ac/k", "--rev=" + r1, "--print-value-only").ok().out()).isEqualTo("1\n");
      // compacted every 2 s to the revision of 2 s before: r1 goes within a few periods
      await("revision " + r1 + " compacted by the leader on its own").atMost(Duration.ofSeconds(30))
          .pollInterval(Duration.ofMillis(200))
          .until(() -> etcdctl.run("get", "ac/k", "--rev=" + r1).err().contains("etcdserver: mvcc: required revision has been compacted"));
      assertThat(etcdctl.run("get", "ac/k", "--print-value-only").ok().out()).isEqualTo("2\n");
      assertThat(IntStream.range(0, 3).filter(i -> !c.logLines(i, "auto-compaction (periodic, keeping 2s): compacting to revision").isEmpty()))
          .as("members that proposed a compaction (the leader)").isNotEmpty();
      for (int i = 0; i < 3; i++) {
        assertThat(c.logLines(i, "compacted to revision")).as("member %d applied a compaction", i).isNotEmpty();
      }
    }
  }

  @Test
  void aDurationInRevisionModeStopsTheMemberWithTheReason() throws Exception {
    try (DistCluster c = new DistCluster(1)) {
      Path dir = Files.createTempDirectory("ac-bad");
      Process p = new ProcessBuilder(c.bin().toString(), "kvstore", "--data-dir", dir.resolve("m").toString(),
          "--listen-client-urls", "http://127.0.0.1:" + io.capstan.common.FreePorts.next(),
          "--listen-peer-urls", "http://127.0.0.1:" + io.capstan.common.FreePorts.next(),
          "--auto-compaction-mode", "revision", "--auto-compaction-retention", "5m").redirectErrorStream(true).start();
      try {
        // waits before reading, so that a member that starts after all fails here instead of hanging
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("the member exited").isTrue();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.exitValue()).as(out).isEqualTo(2);
        assertThat(out).contains("--auto-compaction-retention '5m' is not a number of revisions");
      } finally {
        p.destroyForcibly();
        try (var files = Files.walk(dir)) {
          files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        }
      }
    }
  }
}
