package io.capstan.kvstore;

import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import io.capstan.common.AdminHttpServer;
import io.capstan.common.Urls;
import io.capstan.kvstore.mvcc.ClusterMembers;
import io.capstan.kvstore.mvcc.MvccStore;
import io.capstan.kvstore.proto.RaftCommand;
import io.capstan.kvstore.raft.RaftNode;
import io.capstan.kvstore.server.EtcdGrpcServer;
import io.capstan.kvstore.watch.WatchHub;
import io.etcd.jetcd.api.CompactionRequest;
import java.io.IOException;
import java.nio.file.Files;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One kvstore member, wired: the MVCC store, the watch hub, the Raft node, the etcd gRPC API on
 * the client URLs, and the admin HTTP endpoint on the metrics URL. {@link KvStoreMain} builds it
 * from flags; tests build it directly.
 */
public final class KvStoreServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(KvStoreServer.class);

  private final KvStoreConfig config;
  private final MvccStore store;
  private final RaftNode raft;
  private final EtcdGrpcServer grpc;
  private final AdminHttpServer admin;
  private final MetricRegistry metrics;
  private final ExecutorService compactor;
  private final AutoCompactor autoCompactor;

  private KvStoreServer(KvStoreConfig config, MvccStore store, RaftNode raft, EtcdGrpcServer grpc,
      AdminHttpServer admin, MetricRegistry metrics, ExecutorService compactor, AutoCompactor autoCompactor) {
    this.compactor = compactor;
    this.autoCompactor = autoCompactor;
    this.config = config;
    this.store = store;
    this.raft = raft;
    this.grpc = grpc;
    this.admin = admin;
    this.metrics = metrics;
  }

  /**
   * Starts the member: recovers its state from its data dir (or starts empty, or from a restored
   * snapshot), joins the Raft group and starts serving.
   *
   * @throws IOException if the data dir or a listener cannot be set up
   */
  public static KvStoreServer start(KvStoreConfig config) throws IOException {
    Files.createDirectories(config.dataDir());
    MvccStore store = new MvccStore();
    ExecutorService compactor = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "mvcc-compactor");
      t.setDaemon(true);
      return t;
    });
    store.trimInBackground(compactor);
    ClusterMembers members = new ClusterMembers();
    WatchHub hub = new WatchHub(store);
    MetricRegistry metrics = new MetricRegistry();
    RaftNode raft;
    try {
      raft = RaftNode.start(config, store, members);
    } catch (IOException | RuntimeException e) {
      compactor.shutdownNow();
      throw e;
    }
    EtcdGrpcServer grpc;
    try {
      grpc = EtcdGrpcServer.start(config, store, members, raft, hub, metrics);
    } catch (IOException | RuntimeException e) {
      raft.close();
      compactor.shutdownNow();
      throw e;
    }
    registerGauges(metrics, store, raft, hub);
    AdminHttpServer admin = null;
    if (config.listenMetricsUrl() != null) {
      Urls.HostPort m = config.listenMetricsUrl();
      java.util.function.Supplier<AdminHttpServer.Check> raftCheck = () ->
          !raft.raftRunning() ? AdminHttpServer.Check.failing("the Raft server is not running")
              : raft.hasLeader() ? AdminHttpServer.Check.passing() : AdminHttpServer.Check.failing("no Raft leader");
      admin = AdminHttpServer.start(m.host(), m.port(), metrics, raftCheck, raftCheck);
    }
    // last, once nothing else can fail: its thread would outlive a member that did not start
    AutoCompactor autoCompactor = null;
    if (config.autoCompaction().enabled()) {
      autoCompactor = AutoCompactor.start(config.autoCompaction(), compactionTarget(store, raft));
      metrics.register("kvstore_auto_compactions_total", (Gauge<Long>) autoCompactor::compactions);
      metrics.register("kvstore_auto_compaction_failures_total", (Gauge<Long>) autoCompactor::failures);
    }
    KvStoreServer server = new KvStoreServer(config, store, raft, grpc, admin, metrics, compactor, autoCompactor);
    LOG.info("kvstore member {} serving the etcd v3 API on {}", config.name(), grpc.ports());
    return server;
  }

  private static AutoCompactor.Target compactionTarget(MvccStore store, RaftNode raft) {
    return new AutoCompactor.Target() {
      @Override
      public long currentRevision() {
        return store.currentRevision();
      }

      @Override
      public long compactRevision() {
        return store.compactRevision();
      }

      @Override
      public boolean isLeader() {
        return raft.isLeaderReady();
      }

      @Override
      public java.util.concurrent.CompletableFuture<?> compact(long revision) {
        return raft.propose(RaftCommand.newBuilder()
            .setCompaction(CompactionRequest.newBuilder().setRevision(revision)).build());
      }
    };
  }

  private static void registerGauges(MetricRegistry m, MvccStore store, RaftNode raft, WatchHub hub) {
    m.register("kvstore_revision", (Gauge<Long>) store::currentRevision);
    m.register("kvstore_compact_revision", (Gauge<Long>) store::compactRevision);
    m.register("kvstore_keys", (Gauge<Integer>) store::keyCount);
    m.register("kvstore_db_size_bytes", (Gauge<Long>) store::approximateBytes);
    m.register("kvstore_watchers", (Gauge<Integer>) hub::watcherCount);
    m.register("raft_term", (Gauge<Long>) raft::term);
    m.register("raft_proposal_batch_size", raft.proposalBatchSizes());
    m.register("raft_read_barrier_batch_size", raft.readBarrierBatchSizes());
    m.register("raft_proposals_queued", (Gauge<Integer>) raft::proposalsQueued);
    m.register("raft_is_leader", (Gauge<Integer>) () -> raft.isLeader() ? 1 : 0);
    m.register("raft_has_leader", (Gauge<Integer>) () -> raft.hasLeader() ? 1 : 0);
    m.register("raft_applied_index", (Gauge<Long>) raft::appliedIndex);
    m.register("raft_commit_index", (Gauge<Long>) raft::commitIndex);
    m.register("raft_log_start_index", (Gauge<Long>) raft::logStartIndex);
    m.register("raft_log_last_index", (Gauge<Long>) raft::logLastIndex);
    m.register("raft_acknowledged_index", (Gauge<Long>) raft::acknowledgedIndex);
    m.register("raft_snapshots_installed", (Gauge<Long>) raft::snapshotsInstalled);
    m.register("raft_snapshot_reload_retries_total", (Gauge<Long>) raft::snapshotReloadRetries);
    m.register("raft_resent_calls_total", (Gauge<Long>) raft::resentCalls);
    m.register("raft_watched_elections_total", (Gauge<Long>) raft::watchedElections);
    m.register("raft_inline_server_steps_total", (Gauge<Long>) raft::inlineServerSteps);
    m.register("raft_silent_followers", (Gauge<Integer>) raft::silentFollowers);
    m.register("raft_forwarded_commands_total", (Gauge<Long>) raft::forwardedCommands);
    m.register("raft_forwarded_queries_total", (Gauge<Long>) raft::forwardedQueries);
    m.register("raft_apply_repairs_total", (Gauge<Long>) raft::applyRepairs);
    m.register("raft_forward_received_commands_total", (Gauge<Long>) raft::forwardReceivedCommands);
    m.register("raft_forward_fallbacks_total", (Gauge<Long>) raft::forwardFallbacks);
    m.register("raft_forward_streams_opened_total", (Gauge<Long>) raft::forwardStreamsOpened);
    m.register("raft_forward_stream_calls_total", (Gauge<Long>) raft::forwardStreamCalls);
    m.register("kvstore_lease_stale_expiries", (Gauge<Long>) raft::staleLeaseExpiries);
    m.register("raft_read_index_confirmed", (Gauge<Long>) raft::readIndexConfirmed);
    m.register("raft_read_index_fallbacks", (Gauge<Long>) raft::readIndexFallbacks);
    m.register("raft_leader_queries_unconfirmed", (Gauge<Long>) raft::leaderQueriesUnconfirmed);
    m.register("raft_client_proposals_total", (Gauge<Long>) raft::clientProposals);
    m.register("raft_forward_send", raft.forwardSends());
    m.register("raft_forward_handle", raft.forwardsHandled());
    m.register("kvstore_serializable_read_wait", raft.localReadWait());
    m.register("kvstore_snapshot_capture", raft.snapshotCaptures());
    m.register("kvstore_snapshot_write", raft.snapshotWrites());
    raft.publishRatisMetrics(m);
  }

  public KvStoreConfig config() {
    return config;
  }

  public MvccStore store() {
    return store;
  }

  public RaftNode raft() {
    return raft;
  }

  public MetricRegistry metrics() {
    return metrics;
  }

  /** The bound client ports, in the order of the listen URLs. */
  public List<Integer> clientPorts() {
    return grpc.ports();
  }

  public int metricsPort() {
    return admin == null ? -1 : admin.port();
  }

  @Override
  public void close() {
    LOG.info("kvstore member {} stopping", config.name());
    if (autoCompactor != null) {
      autoCompactor.close();
    }
    grpc.close();
    raft.close();
    compactor.shutdownNow();
    if (admin != null) {
      admin.close();
    }
  }
}
