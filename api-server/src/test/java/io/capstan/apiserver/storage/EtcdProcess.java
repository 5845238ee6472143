package io.capstan.apiserver.storage;

import java.io.IOException;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/** A real single-member etcd (Debian's etcd-server) on free loopback ports, for contract tests. */
public final class EtcdProcess implements AutoCloseable {
  final Path dir;
  final int clientPort;
  private final Process process;

  public EtcdProcess() throws IOException {
    Path bin = Path.of("/usr/bin/etcd");
    if (!Files.isExecutable(bin)) {
      throw new IllegalStateException("/usr/bin/etcd is missing: apt-get install -y etcd-server (.ci/run does)");
    }
    dir = Files.createTempDirectory("etcd");
    clientPort = io.capstan.kvstore.testing.MiniCluster.freePort();
    int peerPort = io.capstan.kvstore.testing.MiniCluster.freePort();
    String client = "http://127.0.0.1:" + clientPort;
    String peer = "http://127.0.0.1:" + peerPort;
    process = new ProcessBuilder(List.of(bin.toString(), "--name", "t", "--data-dir", dir.resolve("data").toString(),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "t=" + peer))
        .redirectErrorStream(true).redirectOutput(dir.resolve("etcd.log").toFile()).start();
    try {
      org.awaitility.Awaitility.await("etcd listening on " + client).atMost(java.time.Duration.ofSeconds(30))
          .pollInterval(java.time.Duration.ofMillis(50)).until(() -> {
            if (!process.isAlive()) {
              throw new IllegalStateException("etcd exited: " + Files.readString(dir.resolve("etcd.log")));
            }
            try (Socket s = new Socket("127.0.0.1", clientPort)) {
              return true;
            } catch (IOException notYet) {
              return false;
            }
          });
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  public String endpoint() {
    return "http://127.0.0.1:" + clientPort;
  }

  @Override
  public void close() {
    process.destroyForcibly();
    try {
      process.waitFor(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    deleteTree(dir);
  }

  public static void deleteTree(Path root) {
    if (root == null) {
      return;
    }
    try (Stream<Path> files = Files.walk(root)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException ignored) {
      // a temp dir left behind changes no result
    }
  }
}
