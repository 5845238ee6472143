package io.capstan.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A member process must not start threads per write. On a 2-core machine the JVM's common pool
 * has one thread, and {@code CompletableFuture}'s executor-less {@code *Async} calls then start a
 * thread per task: Ratis does one per AppendEntries on every follower ({@code CommonPool}).
 */
class MemberThreadsTest {
  private static final int PUTS = 300;

  @Test
  void serialWritesStartNoThreadPerWriteOnAnyMember() throws Exception {
    try (DistCluster c = new DistCluster(3).start()) {
      int leader = CrashRecoveryTest.leaderIndex(c, new Etcdctl(c.endpoints()));
      int follower = (leader + 1) % 3;
      // one put first, so that each member's connections and pools exist before counting
      bench(c, c.endpoint(follower), 1);
      double[] before = new double[3];
      for (int i = 0; i < 3; i++) {
        assertThat(c.metric(i, "jvm_common_pool_parallelism")).as("common pool of " + c.name(i)).isGreaterThanOrEqualTo(2);
        before[i] = c.metric(i, "jvm_threads_started");
      }
      // serial puts: each one its own Raft entry, its own AppendEntries to each follower
      bench(c, c.endpoint(follower), PUTS);
      for (int i = 0; i < 3; i++) {
        double started = c.metric(i, "jvm_threads_started") - before[i];
        assertThat(started).as("threads started by " + c.name(i) + " during " + PUTS + " serial puts").isLessThan(PUTS / 6.0);
      }
    }
  }

  /** {@code bin/capstan bench put} with one client, through {@code endpoint}. */
  private static void bench(DistCluster c, String endpoint, int total) throws Exception {
    Path out = Files.createTempFile("bench", ".txt");
    try {
      Process p = new ProcessBuilder(c.bin().toString(), "bench", "put", "--endpoints", endpoint, "--conns", "1",
          "--clients", "1", "--total", Integer.toString(total), "--warmup", "0")
          .redirectErrorStream(true).redirectOutput(out.toFile()).start();
      try {
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).as("bench finished").isTrue();
      } finally {
        p.destroyForcibly();
      }
      assertThat(p.exitValue()).as(Files.readString(out)).isZero();
      assertThat(Files.readString(out)).contains("total=" + total).contains("errors=0");
    } finally {
      Files.deleteIfExists(out);
    }
  }
}
