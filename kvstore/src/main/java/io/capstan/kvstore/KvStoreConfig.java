package io.capstan.kvstore;

import io.capstan.common.Urls;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Everything one kvstore member needs to start, named after etcd's flags. Build with {@link
 * #builder()}; {@link KvStoreMain} fills it from the command line and tests fill it directly.
 *
 * @param initialCluster member name to advertised peer URL, for every member of a new cluster
 * @param snapshotCount applied entries between automatic state-machine snapshots (etcd's
 *     {@code --snapshot-count})
 * @param restoreFile a snapshot to start the state from when the member has no Raft state yet
 * @param autoCompaction what history the leader compacts on its own (etcd's {@code
 *     --auto-compaction-*}); {@link AutoCompaction#OFF} by default, as in etcd
 */
public record KvStoreConfig(
    String name,
    Path dataDir,
    List<Urls.HostPort> listenClientUrls,
    List<String> advertiseClientUrls,
    Urls.HostPort listenPeerUrl,
    String initialAdvertisePeerUrl,
    Map<String, String> initialCluster,
    String initialClusterState,
    String initialClusterToken,
    Urls.HostPort listenMetricsUrl,
    long snapshotCount,
    Duration electionTimeout,
    Duration requestTimeout,
    long logSegmentBytes,
    int maxRequestBytes,
    long quotaBackendBytes,
    Duration progressNotifyInterval,
    Path restoreFile,
    AutoCompaction autoCompaction) {

  /** etcd's default {@code --max-request-bytes}: 1.5 MiB. */
  public static final int DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024;

  /**
   * The default space quota: a third of the heap. The store keeps every version in memory, and the
   * size it accounts ({@code MvccStore.approximateBytes}) includes the per-version overhead, so a
   * third leaves room for Raft's caches and the garbage of a busy member.
   */
  public static long defaultQuotaBytes() {
    return Runtime.getRuntime().maxMemory() / 3;
  }

  public KvStoreConfig {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(dataDir, "dataDir");
    Objects.requireNonNull(autoCompaction, "autoCompaction");
    if (!initialCluster.containsKey(name)) {
      throw new IllegalArgumentException("--initial-cluster has no entry for this member's --name '" + name + "'");
    }
    if (!"new".equals(initialClusterState) && !"existing".equals(initialClusterState)) {
      throw new IllegalArgumentException("--initial-cluster-state must be 'new' or 'existing', not '" + initialClusterState + "'");
    }
  }

  /**
   * The smallest lease TTL granted, in seconds: 1.5 election timeouts rounded up (etcd's rule), so
   * that a lease cannot expire during an election.
   */
  public long minLeaseTtlSeconds() {
    return Math.max(1, (electionTimeout.toMillis() * 3 / 2 + 999) / 1000);
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Builder with etcd's defaults where etcd has them. */
  public static final class Builder {
    private String name = "default";
    private Path dataDir;
    private List<Urls.HostPort> listenClientUrls = List.of(new Urls.HostPort("127.0.0.1", 2379));
    private List<String> advertiseClientUrls;
    private Urls.HostPort listenPeerUrl = new Urls.HostPort("127.0.0.1", 2380);
    private String initialAdvertisePeerUrl;
    private Map<String, String> initialCluster;
    private String initialClusterState = "new";
    private String initialClusterToken = "etcd-cluster";
    private Urls.HostPort listenMetricsUrl;
    private long snapshotCount = 100_000;
    private Duration electionTimeout = Duration.ofMillis(1000);
    private Duration requestTimeout = Duration.ofSeconds(7);
    private long logSegmentBytes = 4L * 1024 * 1024;
    private int maxRequestBytes = DEFAULT_MAX_REQUEST_BYTES;
    private long quotaBackendBytes = 0;
    private Duration progressNotifyInterval = Duration.ofMinutes(10);
    private Path restoreFile;
    private AutoCompaction autoCompaction = AutoCompaction.OFF;

    public Builder name(String v) { name = v; return this; }
    public Builder dataDir(Path v) { dataDir = v; return this; }
    public Builder listenClientUrls(List<Urls.HostPort> v) { listenClientUrls = List.copyOf(v); return this; }
    public Builder advertiseClientUrls(List<String> v) { advertiseClientUrls = List.copyOf(v); return this; }
    public Builder listenPeerUrl(Urls.HostPort v) { listenPeerUrl = v; return this; }
    public Builder initialAdvertisePeerUrl(String v) { initialAdvertisePeerUrl = v; return this; }
    public Builder initialCluster(Map<String, String> v) { initialCluster = new LinkedHashMap<>(v); return this; }
    public Builder initialClusterState(String v) { initialClusterState = v; return this; }
    public Builder initialClusterToken(String v) { initialClusterToken = v; return this; }
    public Builder listenMetricsUrl(Urls.HostPort v) { listenMetricsUrl = v; return this; }
    public Builder snapshotCount(long v) { snapshotCount = v; return this; }
    public Builder electionTimeout(Duration v) { electionTimeout = v; return this; }
    public Builder requestTimeout(Duration v) { requestTimeout = v; return this; }
    public Builder logSegmentBytes(long v) { logSegmentBytes = v; return this; }
    public Builder maxRequestBytes(int v) { maxRequestBytes = v; return this; }
    /** 0 means {@link #defaultQuotaBytes()}. */
    public Builder quotaBackendBytes(long v) { quotaBackendBytes = v; return this; }
    public Builder progressNotifyInterval(Duration v) { progressNotifyInterval = v; return this; }
    public Builder restoreFile(Path v) { restoreFile = v; return this; }
    public Builder autoCompaction(AutoCompaction v) { autoCompaction = v; return this; }

    public KvStoreConfig build() {
      String peer = initialAdvertisePeerUrl != null ? initialAdvertisePeerUrl : "http://" + listenPeerUrl;
      Map<String, String> cluster = initialCluster != null ? initialCluster : Map.of(name, peer);
      List<String> advertise = advertiseClientUrls != null ? advertiseClientUrls
          : listenClientUrls.stream().map(hp -> "http://" + hp).toList();
      return new KvStoreConfig(name, dataDir, listenClientUrls, advertise, listenPeerUrl, peer, cluster,
          initialClusterState, initialClusterToken, listenMetricsUrl, snapshotCount, electionTimeout,
          requestTimeout, logSegmentBytes, maxRequestBytes,
          quotaBackendBytes > 0 ? quotaBackendBytes : defaultQuotaBytes(), progressNotifyInterval, restoreFile,
          autoCompaction);
    }
  }
}
