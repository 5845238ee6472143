package io.capstan.kvstore;

import io.capstan.common.CommonPool;
import io.capstan.common.GoDurations;
import io.capstan.common.Urls;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code capstan kvstore}: one kvstore member, with etcd's flag names. */
@Command(name = "capstan kvstore", mixinStandardHelpOptions = true, sortOptions = false,
    description = "Runs one member of a Raft-replicated key-value store that speaks the etcd v3 gRPC API.")
public final class KvStoreMain implements Callable<Integer> {
  @Option(names = "--name", description = "Human-readable name for this member (default: ${DEFAULT-VALUE}).")
  String name = "default";

  @Option(names = "--data-dir", description = "Path to the data directory (default: <name>.etcd).")
  Path dataDir;

  @Option(names = "--listen-client-urls", description = "URLs to serve the etcd API on (default: ${DEFAULT-VALUE}).")
  String listenClientUrls = "http://localhost:2379";

  @Option(names = "--advertise-client-urls", description = "This member's client URLs as published to the cluster (default: the listen URLs).")
  String advertiseClientUrls;

  @Option(names = "--listen-peer-urls", description = "URL to listen on for Raft peer traffic (default: ${DEFAULT-VALUE}).")
  String listenPeerUrls = "http://localhost:2380";

  @Option(names = "--initial-advertise-peer-urls", description = "This member's peer URL as the others reach it (default: the listen peer URL).")
  String initialAdvertisePeerUrls;

  @Option(names = "--initial-cluster", description = "Every member as name=peerURL, comma-separated (default: this member alone).")
  String initialCluster;

  @Option(names = "--initial-cluster-state", description = "'new' or 'existing' (default: ${DEFAULT-VALUE}).")
  String initialClusterState = "new";

  @Option(names = "--initial-cluster-token", description = "Cluster token; members of one cluster share it (default: ${DEFAULT-VALUE}).")
  String initialClusterToken = "etcd-cluster";

  @Option(names = "--listen-metrics-urls", description = "URL serving /metrics, /healthz and /readyz over HTTP (default: off).")
  String listenMetricsUrls;

  @Option(names = "--snapshot-count", description = "Applied entries between state snapshots; the log is purged behind them (default: ${DEFAULT-VALUE}).")
  long snapshotCount = 100_000;

  @Option(names = "--election-timeout", description = "Election timeout in ms: a follower campaigns after hearing nothing from the leader for a random time between half of it and all of it (default: ${DEFAULT-VALUE}).")
  long electionTimeoutMs = 1000;

  @Option(names = "--heartbeat-interval", description = "Accepted for etcd compatibility; Ratis heartbeats at half the shortest election timeout.")
  long heartbeatIntervalMs = 100;

  @Option(names = "--max-request-bytes", description = "Largest request accepted, in bytes (default: ${DEFAULT-VALUE}).")
  int maxRequestBytes = KvStoreConfig.DEFAULT_MAX_REQUEST_BYTES;

  @Option(names = "--quota-backend-bytes", description = "Space quota: over it, puts, txns and lease grants fail with "
      + "'etcdserver: mvcc: database space exceeded' until a compaction frees space (default 0: a third of the heap).")
  long quotaBackendBytes;

  @Option(names = "--auto-compaction-mode", description = "'periodic' (keep a duration of history) or 'revision' (keep a number of revisions) (default: ${DEFAULT-VALUE}).")
  String autoCompactionMode = "periodic";

  @Option(names = "--auto-compaction-retention", description = "History the leader keeps when it compacts on its own: "
      + "a duration (30m, 72h; a bare number is hours) in periodic mode, a revision count in revision mode; 0 turns it off (default: ${DEFAULT-VALUE}).")
  String autoCompactionRetention = "0";

  @Option(names = "--experimental-watch-progress-notify-interval", description = "Interval of watch progress notifications, e.g. 10m, 5s (default: ${DEFAULT-VALUE}).")
  String progressNotifyInterval = "10m";

  @Override
  public Integer call() throws Exception {
    KvStoreConfig config = toConfig();
    KvStoreServer server = KvStoreServer.start(config);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.close();
      stopped.countDown();
    }, "shutdown"));
    // a member whose Raft server closed under it serves nothing true any more: exit (status 1)
    // so that its supervisor restarts it, as etcd exits on a failed apply; on its own thread, as
    // the shutdown hook stops the timer thread that noticed it
    server.raft().onRaftLost(reason -> new Thread(() -> {
      System.err.println("capstan kvstore: " + config.name() + " exits: " + reason);
      // closing a Raft server that closed itself halfway may never end: halt after 10 s
      Thread halt = new Thread(() -> {
        java.util.concurrent.locks.LockSupport.parkNanos(java.util.concurrent.TimeUnit.SECONDS.toNanos(10));
        Runtime.getRuntime().halt(1);
      }, "raft-lost-halt");
      halt.setDaemon(true);
      halt.start();
      System.exit(1);
    }, "raft-lost-exit").start());
    stopped.await();
    return 0;
  }

  KvStoreConfig toConfig() {
    Path dir = dataDir != null ? dataDir : Path.of(name + ".etcd");
    Path restore = dir.resolve(SnapshotRestoreMain.RESTORE_FILE);
    KvStoreConfig.Builder b = KvStoreConfig.builder()
        .name(name)
        .dataDir(dir)
        .listenClientUrls(Urls.parseList(listenClientUrls))
        .listenPeerUrl(Urls.parseList(listenPeerUrls).get(0))
        .initialClusterState(initialClusterState)
        .initialClusterToken(initialClusterToken)
        .snapshotCount(snapshotCount)
        .electionTimeout(Duration.ofMillis(electionTimeoutMs))
        .maxRequestBytes(maxRequestBytes)
        .quotaBackendBytes(quotaBackendBytes)
        .progressNotifyInterval(GoDurations.parseFlag("--experimental-watch-progress-notify-interval", progressNotifyInterval))
        .autoCompaction(AutoCompaction.parse(autoCompactionMode, autoCompactionRetention))
        .restoreFile(Files.exists(restore) ? restore : null);
    if (advertiseClientUrls != null) {
      b.advertiseClientUrls(java.util.List.of(advertiseClientUrls.split(",")));
    }
    String peer = initialAdvertisePeerUrls != null ? initialAdvertisePeerUrls.split(",")[0] : listenPeerUrls.split(",")[0];
    b.initialAdvertisePeerUrl(peer);
    b.initialCluster(initialCluster != null ? parseCluster(initialCluster) : Map.of(name, peer));
    if (listenMetricsUrls != null) {
      b.listenMetricsUrl(Urls.parseList(listenMetricsUrls).get(0));
    }
    return b.build();
  }

  static Map<String, String> parseCluster(String spec) {
    Map<String, String> out = new LinkedHashMap<>();
    for (String part : spec.split(",")) {
      int eq = part.indexOf('=');
      if (eq <= 0 || eq == part.length() - 1) {
        throw new IllegalArgumentException("--initial-cluster entry '" + part + "' is not name=http://host:port");
      }
      String url = part.substring(eq + 1).trim();
      Urls.parse(url);
      if (out.put(part.substring(0, eq).trim(), url) != null) {
        throw new IllegalArgumentException("--initial-cluster names member '" + part.substring(0, eq) + "' twice");
      }
    }
    return out;
  }

  public static void main(String[] args) {
    CommonPool.atLeastTwoThreads();
    CommandLine cli = new CommandLine(new KvStoreMain());
    cli.setExecutionExceptionHandler((e, cmd, parsed) -> {
      cmd.getErr().println("capstan kvstore: " + e.getMessage());
      return e instanceof IllegalArgumentException ? 2 : 1;
    });
    int code = cli.execute(args);
    System.exit(code);
  }
}
