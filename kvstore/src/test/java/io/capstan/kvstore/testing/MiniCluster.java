package io.capstan.kvstore.testing;

import io.capstan.common.Urls;
import io.capstan.kvstore.KvStoreConfig;
import io.capstan.kvstore.KvStoreServer;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.awaitility.Awaitility;

/**
 * N kvstore members in this JVM on free loopback ports, each with its own data dir, that a test
 * can stop, restart and poll (after Ratis' {@code MiniRaftCluster}). Members talk real Raft over
 * gRPC and serve the real etcd API; only the process boundary is missing.
 *
 * <p>{@link #kill} closes a member: its listeners go away at once and the Raft log it
 * acknowledged is on disk (entries are fsynced before they are acknowledged), so for every
 * property a test here checks it is a crash. SIGKILL of real processes is tested in {@code e2e}.
 */
public final class MiniCluster implements AutoCloseable {
  private static final Duration POLL = Duration.ofMillis(20);
  private final Path root;
  private final List<KvStoreConfig> configs = new ArrayList<>();
  private final KvStoreServer[] members;
  private final Map<Integer, ManagedChannel> channels = new LinkedHashMap<>();

  private MiniCluster(Builder b) throws IOException {
    root = Files.createTempDirectory("minicluster");
    members = new KvStoreServer[b.size];
    Map<String, String> initial = new LinkedHashMap<>();
    int[] clientPorts = new int[b.size];
    int[] peerPorts = new int[b.size];
    for (int i = 0; i < b.size; i++) {
      clientPorts[i] = freePort();
      peerPorts[i] = freePort();
      initial.put(name(i), "http://127.0.0.1:" + peerPorts[i]);
    }
    for (int i = 0; i < b.size; i++) {
      KvStoreConfig.Builder config = KvStoreConfig.builder();
      if (b.advertisedClientUrls.containsKey(i)) {
        config.advertiseClientUrls(List.of(b.advertisedClientUrls.get(i)));
      }
      configs.add(config
          .name(name(i))
          .dataDir(root.resolve(name(i)))
          .listenClientUrls(List.of(new Urls.HostPort("127.0.0.1", clientPorts[i])))
          .listenPeerUrl(new Urls.HostPort("127.0.0.1", peerPorts[i]))
          .initialCluster(initial)
          .initialClusterToken("minicluster-" + root.getFileName())
          .snapshotCount(b.snapshotCount)
          .logSegmentBytes(b.logSegmentBytes)
          .quotaBackendBytes(b.quotaBackendBytes)
          .maxRequestBytes(b.maxRequestBytes)
          .electionTimeout(b.electionTimeout)
          .requestTimeout(b.requestTimeout)
          .progressNotifyInterval(b.progressNotifyInterval)
          .autoCompaction(b.autoCompaction)
          .build());
    }
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Starts a cluster and waits until it has a leader. */
  public static MiniCluster start(int size) {
    return builder().size(size).start();
  }

  private static String name(int i) {
    return "m" + i;
  }

  public int size() {
    return members.length;
  }

  /** The running member at {@code i}; fails if it is stopped. */
  public KvStoreServer member(int i) {
    if (members[i] == null) {
      throw new IllegalStateException("member " + i + " is stopped");
    }
    return members[i];
  }

  public boolean isRunning(int i) {
    return members[i] != null;
  }

  public KvStoreConfig config(int i) {
    return configs.get(i);
  }

  public String endpoint(int i) {
    return "http://" + configs.get(i).listenClientUrls().get(0);
  }

  public List<String> endpoints() {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < members.length; i++) {
      out.add(endpoint(i));
    }
    return out;
  }

  /** A gRPC channel to member {@code i}'s client port, owned (and closed) by the cluster. */
  public synchronized ManagedChannel channel(int i) {
    return channels.computeIfAbsent(i, k -> NettyChannelBuilder
        .forAddress("127.0.0.1", configs.get(k).listenClientUrls().get(0).port())
        .usePlaintext().maxInboundMessageSize(64 << 20).build());
  }

  /** Stops member {@code i} (see the class comment on why this stands for a crash). */
  public void kill(int i) {
    KvStoreServer m = members[i];
    members[i] = null;
    if (m != null) {
      m.close();
    }
  }

  /** Starts member {@code i} again on its data dir and ports. */
  public void restart(int i) {
    if (members[i] != null) {
      throw new IllegalStateException("member " + i + " is running");
    }
    members[i] = startMember(configs.get(i));
  }

  private static KvStoreServer startMember(KvStoreConfig config) {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (true) {
      try {
        return KvStoreServer.start(config);
      } catch (IOException | RuntimeException e) {
        // A port of a member just stopped may linger for a moment; retry binds until the deadline.
        if (!(rootCause(e) instanceof BindException) || System.nanoTime() > deadline) {
          throw e instanceof IOException io ? new UncheckedIOException(io) : (RuntimeException) e;
        }
        Thread.onSpinWait();
      }
    }
  }

  private static Throwable rootCause(Throwable t) {
    while (t.getCause() != null && t.getCause() != t) {
      t = t.getCause();
    }
    return t;
  }

  /** Index of the running member that is leader and ready to serve writes, or -1. */
  public int leaderIndex() {
    for (int i = 0; i < members.length; i++) {
      if (members[i] != null && members[i].raft().isLeaderReady()) {
        return i;
      }
    }
    return -1;
  }

  /** Waits until one running member is leader and every running member knows a leader. */
  public int waitForLeader(Duration timeout) {
    return Awaitility.await("a leader known to every running member").atMost(timeout).pollInterval(POLL)
        .until(() -> allRunningKnowLeader() ? leaderIndex() : -1, leader -> leader >= 0);
  }

  private boolean allRunningKnowLeader() {
    for (KvStoreServer m : members) {
      if (m != null && !m.raft().hasLeader()) {
        return false;
      }
    }
    return true;
  }

  /** Waits until every running member has applied the same revision. */
  public void waitForConvergence(Duration timeout) {
    Awaitility.await("every running member at the same revision").atMost(timeout).pollInterval(POLL)
        .until(this::converged);
  }

  private boolean converged() {
    long rev = -1;
    for (KvStoreServer m : members) {
      if (m == null) {
        continue;
      }
      long r = m.store().currentRevision();
      if (rev >= 0 && r != rev) {
        return false;
      }
      rev = r;
    }
    return true;
  }

  @Override
  public void close() {
    synchronized (this) {
      channels.values().forEach(ManagedChannel::shutdownNow);
      channels.clear();
    }
    RuntimeException first = null;
    for (int i = 0; i < members.length; i++) {
      try {
        kill(i);
      } catch (RuntimeException e) {
        first = first == null ? e : first;
      }
    }
    try (Stream<Path> files = Files.walk(root)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException ignored) {
      // best effort: a temp dir left behind does not change any result
    }
    if (first != null) {
      throw first;
    }
  }

  /** A loopback port free right now. */
  public static int freePort() {
    return io.capstan.common.FreePorts.next();
  }

  /** Cluster shape; defaults give a 3-member cluster with etcd's settings. */
  public static final class Builder {
    private int size = 3;
    private long snapshotCount = 10_000;
    private long logSegmentBytes = 8L * 1024 * 1024;
    private Duration electionTimeout = Duration.ofMillis(1000);
    private Duration requestTimeout = Duration.ofSeconds(7);
    private Duration progressNotifyInterval = Duration.ofMinutes(10);
    private long quotaBackendBytes = 0;
    private int maxRequestBytes = KvStoreConfig.DEFAULT_MAX_REQUEST_BYTES;
    private final Map<Integer, String> advertisedClientUrls = new LinkedHashMap<>();
    private io.capstan.kvstore.AutoCompaction autoCompaction = io.capstan.kvstore.AutoCompaction.OFF;

    public Builder size(int v) { size = v; return this; }
    public Builder snapshotCount(long v) { snapshotCount = v; return this; }
    public Builder logSegmentBytes(long v) { logSegmentBytes = v; return this; }
    public Builder electionTimeout(Duration v) { electionTimeout = v; return this; }
    public Builder requestTimeout(Duration v) { requestTimeout = v; return this; }
    public Builder progressNotifyInterval(Duration v) { progressNotifyInterval = v; return this; }
    public Builder quotaBackendBytes(long v) { quotaBackendBytes = v; return this; }
    public Builder maxRequestBytes(int v) { maxRequestBytes = v; return this; }
    public Builder autoCompaction(io.capstan.kvstore.AutoCompaction v) { autoCompaction = v; return this; }
    /** Member {@code i} advertises {@code url} as its client URL instead of the one it listens on. */
    public Builder advertiseClientUrl(int i, String url) { advertisedClientUrls.put(i, url); return this; }

    /** Starts every member (in parallel, as Raft needs a majority to elect) and waits for a leader. */
    public MiniCluster start() {
      MiniCluster c;
      try {
        c = new MiniCluster(this);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      try {
        List<Thread> starters = new ArrayList<>();
        RuntimeException[] failure = new RuntimeException[1];
        for (int i = 0; i < size; i++) {
          int idx = i;
          Thread t = new Thread(() -> {
            try {
              c.members[idx] = startMember(c.configs.get(idx));
            } catch (RuntimeException e) {
              synchronized (failure) {
                failure[0] = e;
              }
            }
          }, "minicluster-start-" + i);
          t.start();
          starters.add(t);
        }
        for (Thread t : starters) {
          t.join();
        }
        if (failure[0] != null) {
          throw failure[0];
        }
        c.waitForLeader(Duration.ofSeconds(30));
        return c;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        c.close();
        throw new IllegalStateException(e);
      } catch (RuntimeException | Error e) {
        c.close();
        throw e;
      }
    }
  }
}
