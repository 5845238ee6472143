package io.capstan.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The README's quickstart path: bin/capstan local-cluster start, etcdctl, stop. */
class LocalClusterScriptTest {
  private final Path bin = Paths.get(System.getProperty("capstan.dist", "../deploy/target/capstan"), "bin/capstan")
      .toAbsolutePath().normalize();

  private String run(Path dir, int basePort, String... args) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(bin.toString(), "local-cluster"));
    cmd.addAll(List.of(args));
    cmd.addAll(List.of("--dir", dir.toString(), "--base-port", String.valueOf(basePort),
        "--api-http-port", String.valueOf(basePort + 50), "--api-grpc-port", String.valueOf(basePort + 51)));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(out).isZero();
    return out;
  }

  /** A base port whose whole block (P..P+5 and P+100..P+102) is free right now. */
  private static int freeBlock() {
    for (int attempt = 0; attempt < 50; attempt++) {
      int base = 20000 + (int) (Math.random() * 20000);
      boolean free = true;
      for (int port : new int[] {base, base + 1, base + 2, base + 3, base + 4, base + 5, base + 50, base + 51, base + 100, base + 101, base + 102}) {
        try (java.net.ServerSocket s = new java.net.ServerSocket(port, 1, java.net.InetAddress.getLoopbackAddress())) {
          s.setReuseAddress(true);
        } catch (java.io.IOException e) {
          free = false;
          break;
        }
      }
      if (free) {
        return base;
      }
    }
    throw new AssertionError("no free port block");
  }

  /** Alive and not a zombie (the launcher's children are reparented; nobody may reap them here). */
  private static boolean running(long pid) {
    try {
      String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
      return stat.charAt(stat.lastIndexOf(')') + 2) != 'Z';
    } catch (java.io.IOException e) {
      return false;
    }
  }

  @Test
  void startPutGetStopLeavesNoProcess() throws Exception {
    Path dir = Files.createTempDirectory("localcluster");
    int base = freeBlock();
    try {
      String started = run(dir, base, "start");
      assertThat(started).contains("3 members ready");
      Etcdctl etcdctl = new Etcdctl("127.0.0.1:" + base + ",127.0.0.1:" + (base + 2) + ",127.0.0.1:" + (base + 4));
      assertThat(etcdctl.run("put", "foo", "bar").ok().out()).isEqualTo("OK\n");
      assertThat(etcdctl.run("get", "foo", "--print-value-only").ok().out()).isEqualTo("bar\n");
      assertThat(run(dir, base, "status")).contains("kv1 pid").contains("running").contains("api-server pid");
      // the api-server answers kubectl through the kubeconfig the launcher wrote
      Process k = new ProcessBuilder("kubectl", "--kubeconfig", dir.resolve("kubeconfig").toString(), "get", "namespaces")
          .redirectErrorStream(true).start();
      String ns = new String(k.getInputStream().readAllBytes());
      assertThat(k.waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(ns).contains("default").contains("kube-system");
      run(dir, base, "kill", "kv2");
      assertThat(run(dir, base, "status")).contains("kv2 stopped");
      run(dir, base, "restart", "kv2");
      assertThat(etcdctl.run("put", "foo", "baz").ok().out()).isEqualTo("OK\n");
    } finally {
      List<Long> pids = new ArrayList<>();
      Path pidDir = dir.resolve("pids");
      if (Files.isDirectory(pidDir)) {
        try (var files = Files.list(pidDir)) {
          files.filter(f -> f.toString().endsWith(".pid")).forEach(f -> {
            try {
              pids.add(Long.parseLong(Files.readString(f).trim()));
            } catch (Exception ignored) {
              // an unreadable pid file has no process to check
            }
          });
        }
      }
      run(dir, base, "clean");
      for (long pid : pids) {
        assertThat(running(pid)).as("pid %d stopped", pid).isFalse();
      }
    }
  }
}
