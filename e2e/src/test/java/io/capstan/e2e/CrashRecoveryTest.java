package io.capstan.e2e;

import static org.awaitility.Awaitility.await;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * SIGKILL of real member processes: of the leader, of every member at once; a member whose apply
 * fails; and backup/restore.
 */
class CrashRecoveryTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void killingEveryMemberAtOnceLosesNoAcknowledgedWrite() {
    try (DistCluster c = new DistCluster(3).start()) {
      Etcdctl etcdctl = new Etcdctl(c.endpoints());
      List<String> acked = new ArrayList<>();
      for (int i = 0; i < 40; i++) {
        if (etcdctl.run("put", "crash/" + i, "v" + i).exitCode() == 0) {
          acked.add("crash/" + i);
        }
      }
      assertThat(acked).hasSize(40);
      for (int i = 0; i < 3; i++) {
        c.kill(i);
      }
      for (int i = 0; i < 3; i++) {
        c.startMember(i);
      }
      for (int i = 0; i < 3; i++) {
        c.awaitReady(i, java.time.Duration.ofSeconds(60));
      }
      String keys = etcdctl.run("get", "crash/", "--prefix", "--keys-only").ok().out();
      for (String k : acked) {
        assertThat(keys).contains(k + "\n");
      }
      assertThat(etcdctl.run("get", "crash/39", "--print-value-only").ok().out()).isEqualTo("v39\n");
    }
  }

  @Test
  void writesResumeAfterTheLeaderIsKilled() throws Exception {
    try (DistCluster c = new DistCluster(3).start()) {
      Etcdctl all = new Etcdctl(c.endpoints());
      all.run("put", "lk/before", "1").ok();
      int leader = leaderIndex(c, all);
      c.kill(leader);
      List<String> survivors = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        if (i != leader) {
          survivors.add(c.endpoint(i));
        }
      }
      Etcdctl rest = new Etcdctl(String.join(",", survivors));
      putUntilAcknowledged(rest, "lk/after", "2");
      assertThat(rest.run("get", "lk/", "--prefix", "--keys-only").ok().out()).isEqualTo("lk/after\n\nlk/before\n\n");
      // the killed member comes back and catches up
      c.startMember(leader);
      c.awaitReady(leader, java.time.Duration.ofSeconds(60));
      Etcdctl back = new Etcdctl(c.endpoint(leader));
      await("the restarted member has lk/after").atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
          .until(() -> back.run("get", "lk/after", "--consistency=s", "--print-value-only").out().equals("2\n"));
    }
  }

  /**
   * A member whose apply fails (a failpoint here; a bug or a broken store in life) loses its Raft
   * server (Ratis closes it). It must not linger, serving a state that no longer moves: it exits
   * with status 1, the others go on (electing a new leader if it led: a write in flight then
   * times out and is sent again, as a client does), and restarted it catches up from its log.
   */
  @Test
  void aMemberWhoseApplyFailsExitsAndCatchesUpWhenRestarted() {
    try (DistCluster c = new DistCluster(3).withJavaOpts(2, "-Dcapstan.failpoint.apply-fails-at=30").start()) {
      Etcdctl first = new Etcdctl(c.endpoint(0));
      boolean led = c.metric(2, "raft_is_leader") > 0;
      long start = System.nanoTime();
      for (int i = 0; i < 40; i++) {
        putUntilAcknowledged(first, "applyfail/" + i, "v" + i);
      }
      long written = System.nanoTime();
      assertThat(c.awaitExit(2, Duration.ofSeconds(30))).as("e2's exit status").isEqualTo(1);
      System.out.printf("applyfail: e2 (%s) exited; 40 puts took %d ms, its exit came %d ms after them%n",
          led ? "the leader" : "a follower", (written - start) / 1_000_000, (System.nanoTime() - written) / 1_000_000);
      assertThat(String.join("\n", c.logLines(2, "exits: its Raft server is"))).as("e2's last words").isNotEmpty();
      putUntilAcknowledged(first, "applyfail/after", "yes");

      c.withJavaOpts(2, null).startMember(2);
      c.awaitReady(2, Duration.ofSeconds(60));
      Etcdctl back = new Etcdctl(c.endpoint(2));
      await("the restarted member has every write").atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
          .until(() -> back.run("get", "applyfail/after", "--consistency=s", "--print-value-only").out().equals("yes\n"));
      assertThat(back.run("get", "applyfail/", "--prefix", "--keys-only", "--consistency=s").ok().out().lines()
          .filter(l -> !l.isEmpty()).count()).isEqualTo(41);
    }
  }

  /** Puts until a put is acknowledged (the same value each time: a put that did apply is harmless to repeat); 30 s at most. */
  private static void putUntilAcknowledged(Etcdctl etcdctl, String key, String value) {
    long deadline = System.currentTimeMillis() + 30_000;
    Etcdctl.Result r = etcdctl.run("put", key, value);
    while (r.exitCode() != 0 && System.currentTimeMillis() < deadline) {
      r = etcdctl.run("put", key, value);
    }
    assertThat(r.exitCode()).as("put " + key + ": " + r.err()).isZero();
  }

  @Test
  void snapshotSaveThenRestoreIntoANewCluster() throws Exception {
    Path backup;
    Path work = Files.createTempDirectory("restore");
    try {
      try (DistCluster c = new DistCluster(3).start()) {
        Etcdctl etcdctl = new Etcdctl(c.endpoints());
        for (int i = 0; i < 20; i++) {
          etcdctl.run("put", "bk/" + i, "v" + i).ok();
        }
        backup = work.resolve("backup.db");
        assertThat(new Etcdctl(c.endpoint(0)).run("snapshot", "save", backup.toString()).ok().out())
            .contains("Snapshot saved at " + backup);
        assertThat(Files.size(backup) % 512).isEqualTo(32);

        // restore into a fresh single-member cluster's data dir, then start it there
        try (DistCluster restored = new DistCluster(1)) {
          Process p = new ProcessBuilder(c.bin().toString(), "kvstore-restore", "--snapshot", backup.toString(),
              "--data-dir", restored.dataDir(0).toString()).redirectErrorStream(true).start();
          String out = new String(p.getInputStream().readAllBytes());
          assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
          assertThat(p.exitValue()).as(out).isZero();
          restored.start();
          Etcdctl r = new Etcdctl(restored.endpoint(0));
          assertThat(r.run("get", "bk/", "--prefix", "--keys-only", "-w", "json").ok().out()).contains("\"count\":20");
          assertThat(r.run("get", "bk/7", "--print-value-only").ok().out()).isEqualTo("v7\n");
          assertThat(r.run("put", "bk/new", "x").ok().out()).isEqualTo("OK\n");
        }

        // a corrupted backup is refused and leaves nothing behind
        byte[] bytes = Files.readAllBytes(backup);
        bytes[bytes.length / 3] ^= 0x10;
        Path bad = Files.write(work.resolve("bad.db"), bytes);
        Path badDir = work.resolve("bad-dir");
        Process p = new ProcessBuilder(c.bin().toString(), "kvstore-restore", "--snapshot", bad.toString(),
            "--data-dir", badDir.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(out).isNotZero();
        assertThat(Files.exists(badDir.resolve("restore.snap"))).isFalse();
      }
    } finally {
      try (var files = Files.walk(work)) {
        files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
      }
    }
  }

  static int leaderIndex(DistCluster c, Etcdctl etcdctl) throws Exception {
    JsonNode status = JSON.readTree(etcdctl.run("endpoint", "status", "-w", "json").ok().out());
    for (JsonNode s : status) {
      if (s.at("/Status/leader").asLong() == s.at("/Status/header/member_id").asLong()) {
        String ep = s.get("Endpoint").asText();
        for (int i = 0; i < c.size(); i++) {
          if (ep.endsWith(c.endpoint(i))) {
            return i;
          }
        }
      }
    }
    throw new AssertionError("no leader in " + status);
  }
}
