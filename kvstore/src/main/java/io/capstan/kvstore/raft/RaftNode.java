package io.capstan.kvstore.raft;

import com.codahale.metrics.Timer;
import io.capstan.common.Urls;
import io.capstan.kvstore.KvStoreConfig;
import io.capstan.kvstore.mvcc.ClusterMembers;
import io.capstan.kvstore.mvcc.KvException;
import io.capstan.kvstore.mvcc.MvccStore;
import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.ApplyResults;
import io.capstan.kvstore.proto.Empty;
import io.capstan.kvstore.proto.LeaderCheck;
import io.capstan.kvstore.proto.ForwardRequest;
import io.capstan.kvstore.proto.Query;
import io.capstan.kvstore.proto.RaftCommand;
import io.grpc.Status;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.apache.ratis.RaftConfigKeys;
import org.apache.ratis.client.RaftClient;
import org.apache.ratis.conf.Parameters;
import org.apache.ratis.conf.RaftProperties;
import org.apache.ratis.grpc.GrpcConfigKeys;
import org.apache.ratis.grpc.GrpcFactory;
import org.apache.ratis.netty.NettyConfigKeys;
import org.apache.ratis.netty.NettyFactory;
import org.apache.ratis.protocol.exceptions.LeaderNotReadyException;
import org.apache.ratis.protocol.ClientId;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftClientAsynchronousProtocol;
import org.apache.ratis.protocol.RaftClientReply;
import org.apache.ratis.protocol.RaftClientRequest;
import org.apache.ratis.protocol.RaftGroup;
import org.apache.ratis.protocol.RaftGroupId;
import org.apache.ratis.protocol.RaftGroupMemberId;
import org.apache.ratis.protocol.RaftPeer;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.retry.RetryPolicies;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.RaftServerConfigKeys;
import org.apache.ratis.server.impl.ElectionWatch;
import org.apache.ratis.server.impl.ServerExecutorShortcut;
import org.apache.ratis.server.storage.RaftStorage;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.apache.ratis.util.SizeInBytes;
import org.apache.ratis.util.TimeDuration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One member of the Raft group: the only class (with {@link KvStateMachine}) that knows Ratis.
 * Proposes commands (straight into the local server when it leads, through a Raft client that
 * finds the leader otherwise), runs linearizable read barriers (ReadIndex), routes leader-only
 * queries to the leader, and on the leader proposes the revocation of expired leases.
 */
public final class RaftNode implements AutoCloseable {
  /**
   * The full gRPC names of the leader's method that takes followers' writes, and of the stream
   * that carries every call between members ({@link LeaderForward}).
   */
  public static final List<String> FORWARD_METHODS = List.of(LeaderForward.PROPOSE.getFullMethodName(),
      LeaderForward.CALLS.getFullMethodName());
  /** The internal read-index methods (a leader check, a follower's read index request): cheap or asynchronous, run inline. */
  public static final List<String> READ_INDEX_METHODS = List.of(LeaderForward.CHECK.getFullMethodName(),
      LeaderForward.READ_INDEX.getFullMethodName());
  private static final Logger LOG = LoggerFactory.getLogger(RaftNode.class);
  private static final long RETRY_DELAY_MS = 50;
  /**
   * {@code -Dcapstan.forward.direct=false} sends follower writes through Ratis' client, one log
   * entry per follower batch, as before {@link LeaderForward} (for A/B runs, and a way back).
   */
  private static final boolean DIRECT_FORWARD = !"false".equals(System.getProperty("capstan.forward.direct"));
  /**
   * Requests go straight to this member's division ({@link #submitLocal}), not through Ratis'
   * server proxy, which hands each one to the division's client executor and blocks the caller
   * until that thread has appended it: the caller waits either way, the hand-off only adds two
   * thread switches. {@code -Dcapstan.raft.direct-submit=false} goes through the proxy (A/B).
   */
  private static final boolean DIRECT_SUBMIT = !"false".equals(System.getProperty("capstan.raft.direct-submit"));
  /** Ratis' server-executor steps of an AppendEntries run on its Netty event loop ({@link ServerExecutorShortcut}). */
  private static final boolean INLINE_SERVER_STEPS = !"false".equals(System.getProperty("capstan.raft.inline-server-steps"));
  /** Where {@link #submitLocal} sends requests: the division, or the server proxy ({@link #DIRECT_SUBMIT}). */
  private final RaftClientAsynchronousProtocol clientProtocol;

  private final KvStoreConfig config;
  private final RaftServer server;
  private final RaftServer.Division division;
  private final RaftGroup group;
  private final RaftPeerId selfId;
  private final RaftClient client;
  private final ClientId localClientId = ClientId.randomId();
  private final AtomicLong callIds = new AtomicLong();
  private final LeaseClock leaseClock;
  private final KvStateMachine stateMachine;
  private final ScheduledExecutorService timer;
  private final StalledApplyRepair applyRepair;
  /** Calls an election once the leader has been silent for an election timeout ({@link ElectionWatch}). */
  private final ElectionWatch electionWatch;
  /** Null when off ({@code -Dcapstan.raft.inline-server-steps=false}) or not installable. */
  private final ServerExecutorShortcut serverSteps;
  /** Runs {@link #electionWatch} alone, so that no other task delays it. */
  private final ScheduledExecutorService electionWatchTimer;
  private final AtomicLong watchedElections = new AtomicLong();
  private final AtomicLong electionWatchLooks = new AtomicLong();
  /** The longest the election watch waits between two looks; it looks when a silence would reach its timeout. */
  private static final long ELECTION_WATCH_MAX_PERIOD_MS = 100;
  /** {@code -Dcapstan.raft.election-watch=false} leaves elections to Ratis' timer alone (for A/B runs). */
  private static final boolean ELECTION_WATCH =
      Boolean.parseBoolean(System.getProperty("capstan.raft.election-watch", "true"));
  /** Entries this member sent through Ratis' client while not the leader. */
  private final AtomicLong clientProposals = new AtomicLong();
  /** On the leader: followers that have not answered for an election timeout (CommitBroadcast#reportFollowers). */
  private volatile int silentFollowers;
  private final Map<String, Long> memberIds = new TreeMap<>();
  private final long clusterId;
  /**
   * Submits to Ratis what follows a completed request (the next ReadIndex round, the next batch of
   * proposals), so that nothing calls into Ratis from a Ratis callback (see {@link ReadBarriers}).
   */
  private final java.util.concurrent.ExecutorService submitter = Executors.newSingleThreadExecutor(r -> {
    Thread t = new Thread(r, "raft-submit");
    t.setDaemon(true);
    return t;
  });
  private final ReadBarriers<Void> readBarriers = new ReadBarriers<>(this::readIndexRound, submitter);
  /** Leadership checks for leader-only answers, shared like read rounds: each completes with the term confirmed. */
  private final ReadBarriers<Long> leadershipChecks = new ReadBarriers<>(
      () -> leaderConfirmation().thenApply(Confirmed::term), submitter);
  /**
   * One entry in flight on the leader: measured on 2 cores with 64 clients over 3 members (when
   * each member still proposed entries of its own), 1 gave ~2,650 puts/s, 2 ~2,000 and 4 or 8
   * ~1,650 (bigger batches beat more overlap, as each entry costs CPU on every member). A
   * follower has one batch at a time on its way to the leader's queue ({@link LeaderForward}).
   */
  private final ProposalBatcher batcher;
  private static final int LEADER_IN_FLIGHT = Integer.getInteger("capstan.propose.max-in-flight", 1);
  private static final int FOLLOWER_IN_FLIGHT = Integer.getInteger("capstan.forward.max-in-flight", 1);
  private final ClusterMembers members;
  private final LeaderForward forward;
  private final AppliedIndexWaiters appliedWaiters = new AppliedIndexWaiters(submitter);
  private final Timer localReadWait = new Timer();
  private final AtomicLong acknowledgedIndex = new AtomicLong();

  private RaftNode(KvStoreConfig config, RaftServer server, RaftGroup group, RaftClient client,
      LeaseClock leaseClock, KvStateMachine stateMachine, long clusterId, ClusterMembers members) throws IOException {
    this.stateMachine = stateMachine;
    this.members = members;
    this.forward = new LeaderForward();
    // A batch stays within the request limit, which the leader's client port accepts (with
    // headroom) from a follower that forwards it.
    this.batcher = new ProposalBatcher(this::replicate, this::maxEntriesInFlight, this::proposalLane,
        Math.min(1024 * 1024, config.maxRequestBytes()), 512, submitter);
    this.config = config;
    this.server = server;
    this.group = group;
    this.selfId = server.getId();
    this.division = server.getDivision(group.getGroupId());
    this.serverSteps = INLINE_SERVER_STEPS ? ServerExecutorShortcut.install(division) : null;
    if (INLINE_SERVER_STEPS && (serverSteps == null || !serverSteps.chained())) {
      LOG.warn("this Ratis' server has no {}: AppendEntries steps keep their hand-offs",
          serverSteps == null ? "server executor to shortcut" : "append chain to move off the common pool");
    }
    this.clientProtocol = DIRECT_SUBMIT ? (RaftClientAsynchronousProtocol) division : server;
    this.applyRepair = new StalledApplyRepair(division, stateMachine);
    this.client = client;
    this.leaseClock = leaseClock;
    this.clusterId = clusterId;
    config.initialCluster().forEach((name, url) -> memberIds.put(name, memberId(url, config.initialClusterToken())));
    this.timer = io.capstan.common.DaemonThreads.scheduler("raft-node-timer");
    this.electionWatch = new ElectionWatch(division, ELECTION_WATCH_MAX_PERIOD_MS);
    this.electionWatchTimer = io.capstan.common.DaemonThreads.scheduler("raft-election-watch");
  }

  /** Starts this member's Raft server (recovering its log and snapshot if the data dir has them). */
  public static RaftNode start(KvStoreConfig config, MvccStore store, ClusterMembers members) throws IOException {
    LeaseClock leaseClock = new LeaseClock(System::nanoTime);
    List<RaftPeer> peers = new ArrayList<>();
    config.initialCluster().forEach((name, url) -> {
      Urls.HostPort hp = Urls.parse(url);
      peers.add(RaftPeer.newBuilder().setId(name).setAddress(hp.toString()).build());
    });
    RaftGroup group = RaftGroup.valueOf(groupId(config), peers);
    RaftProperties props = properties(config);
    KvStateMachine stateMachine = new KvStateMachine(store, members, leaseClock, config.restoreFile(), config.snapshotCount());
    boolean recover = Files.isDirectory(config.dataDir().resolve("raft").resolve(group.getGroupId().getUuid().toString()));
    RaftServer server = RaftServer.newBuilder()
        .setServerId(RaftPeerId.valueOf(config.name()))
        .setGroup(group)
        .setProperties(props)
        .setStateMachine(stateMachine)
        .setOption(recover ? RaftStorage.StartupOption.RECOVER : RaftStorage.StartupOption.FORMAT)
        .build();
    try {
      server.start();
    } catch (IOException | RuntimeException e) {
      // A server that failed to start (say its peer port is taken) may have started its division
      // already: close it, or it lives on as a ghost member that talks to the real ones.
      try {
        server.close();
      } catch (IOException | RuntimeException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
    RaftClient client = RaftClient.newBuilder()
        .setRaftGroup(group)
        .setProperties(props)
        .setClientRpc(CommitBroadcast.NETTY
            ? new NettyFactory(new Parameters()).newRaftClientRpc(ClientId.randomId(), props)
            : new GrpcFactory(new Parameters()).newRaftClientRpc(ClientId.randomId(), props))
        .setRetryPolicy(RetryPolicies.retryUpToMaximumCountWithFixedSleep(
            (int) (config.requestTimeout().toMillis() / 100), TimeDuration.valueOf(100, TimeUnit.MILLISECONDS)))
        .build();
    long clusterId = clusterId(config);
    RaftNode node = new RaftNode(config, server, group, client, leaseClock, stateMachine, clusterId, members);
    stateMachine.setLeadership(new KvStateMachine.Leadership() {
      @Override
      public long leaderTerm() {
        return node.leaderTerm();
      }

      @Override
      public CompletableFuture<Void> confirm(long term) {
        return node.confirmLeadership(term);
      }
    });
    // commands queued behind an entry sent towards the old leader go out in the new lane
    stateMachine.setAfterLeaderChange(node.batcher::wake);
    RaftGroupMemberId self = node.division.getMemberId();
    stateMachine.setAfterApply(() -> {
      CommitBroadcast.signal(self, node.commitIndex(), node.timer);
      var applied = stateMachine.getLastAppliedTermIndex();
      if (applied != null) {
        node.appliedWaiters.advance(applied.getIndex());
      }
    });
    if (ELECTION_WATCH) {
      node.electionWatchTimer.schedule(node::watchElection, ELECTION_WATCH_MAX_PERIOD_MS, TimeUnit.MILLISECONDS);
    }
    node.timer.scheduleWithFixedDelay(node::expireLeases, 250, 250, TimeUnit.MILLISECONDS);
    node.timer.scheduleWithFixedDelay(() -> {
      try {
        node.applyRepair.check();
      } catch (RuntimeException e) {
        LOG.warn("checking the apply for a lost snapshot reload failed", e); // the next run tries again
      }
    }, 500, 500, TimeUnit.MILLISECONDS);
    node.timer.scheduleWithFixedDelay(node::checkRaftServer, 500, 500, TimeUnit.MILLISECONDS);
    node.timer.scheduleWithFixedDelay(() -> {
      try {
        node.silentFollowers = CommitBroadcast.reportFollowers(self, config.electionTimeout().toMillis());
      } catch (RuntimeException e) {
        LOG.debug("follower report failed", e); // a leadership ending under it; the next run retries
      }
    }, 500, 500, TimeUnit.MILLISECONDS);
    LOG.info("kvstore member {} (id {}) started Raft group {} with peers {} ({}, Ratis over {})", config.name(),
        Long.toHexString(node.memberId()), group.getGroupId(), peers, recover ? "recovered" : "new",
        CommitBroadcast.NETTY ? "Netty" : "gRPC");
    return node;
  }

  private static RaftProperties properties(KvStoreConfig config) {
    RaftProperties p = new RaftProperties();
    // Ratis' Netty (or gRPC) transport, with followers told of each commit at once (see CommitBroadcast).
    p.set(RaftConfigKeys.Rpc.TYPE_KEY, CommitBroadcast.class.getName());
    RaftServerConfigKeys.setStorageDir(p, List.of(config.dataDir().resolve("raft").toFile()));
    GrpcConfigKeys.Server.setHost(p, config.listenPeerUrl().host());
    GrpcConfigKeys.Server.setPort(p, config.listenPeerUrl().port());
    NettyConfigKeys.Server.setHost(p, config.listenPeerUrl().host());
    NettyConfigKeys.Server.setPort(p, config.listenPeerUrl().port());
    GrpcConfigKeys.setMessageSizeMax(p, SizeInBytes.valueOf("32MB"));
    long election = config.electionTimeout().toMillis();
    RaftServerConfigKeys.Rpc.setTimeoutMin(p, TimeDuration.valueOf(election / 2, TimeUnit.MILLISECONDS));
    RaftServerConfigKeys.Rpc.setTimeoutMax(p, TimeDuration.valueOf(election, TimeUnit.MILLISECONDS));
    RaftServerConfigKeys.Rpc.setRequestTimeout(p, TimeDuration.valueOf(3, TimeUnit.SECONDS));
    RaftServerConfigKeys.Read.setOption(p, RaftServerConfigKeys.Read.Option.LINEARIZABLE);
    // No leader lease. Linearizable reads do not go through Ratis (readIndexRound); its lease
    // still served the leader-only queries (lease keep-alive and time-to-live), and Ratis 3.2.2's
    // lease counts any AppendEntries reply as an acknowledgement, including a follower's refusal
    // in a newer term (GrpcLogAppender's reply handler records the send time before it reads the
    // result), so a leader deposed while it was paused could renew its lease from the refusal and
    // answer from its own state until it stepped down: PausedLeaderTest saw one such stale read.
    RaftServerConfigKeys.Read.setLeaderLeaseEnabled(p, false);
    RaftServerConfigKeys.Snapshot.setAutoTriggerEnabled(p, true);
    RaftServerConfigKeys.Snapshot.setAutoTriggerThreshold(p, config.snapshotCount());
    RaftServerConfigKeys.Snapshot.setRetentionFileNum(p, 2);
    RaftServerConfigKeys.Log.setPurgeUptoSnapshotIndex(p, true);
    RaftServerConfigKeys.Log.setPurgeGap(p, 1);
    // Durability: an entry is acknowledged to Raft only after fsync (FileChannel.force). These
    // are Ratis' defaults; set explicitly so that nobody "tunes" them away without noticing.
    RaftServerConfigKeys.Log.setUnsafeFlushEnabled(p, false);
    RaftServerConfigKeys.Log.setAsyncFlushEnabled(p, false);
    // No commit-metadata entries: Ratis appends, fsyncs and replicates one after every commit so
    // that followers hear of it; CommitBroadcast does that with a heartbeat instead. Measured A/B,
    // 3 members, 2 cores: puts with 64 in flight +12%, serial puts +30%. A restarted member then
    // learns how far it may apply from the leader rather than from its own log.
    RaftServerConfigKeys.Log.setLogMetadataEnabled(p, false);
    RaftServerConfigKeys.Log.setSegmentSizeMax(p, SizeInBytes.valueOf(config.logSegmentBytes()));
    RaftServerConfigKeys.Log.setWriteBufferSize(p, SizeInBytes.valueOf(4 * 1024 * 1024 + 64 * 1024));
    RaftServerConfigKeys.Log.Appender.setBufferByteLimit(p, SizeInBytes.valueOf("4MB"));
    RaftServerConfigKeys.Log.Appender.setInstallSnapshotEnabled(p, true);
    RaftServerConfigKeys.Log.Appender.setWaitTimeMin(p, TimeDuration.ZERO);
    // Memory: Ratis keeps every reply in its retry cache for 60 s by default (at 2,000 writes/s
    // that is ~100 MB of heap) and six cached log segments. Replies only need to outlive the
    // longest retry of a forwarded request (the request timeout); two segments cover the
    // followers' normal lag (older entries are read from disk or sent as a snapshot).
    RaftServerConfigKeys.RetryCache.setExpiryTime(p, TimeDuration.valueOf(
        Math.max(10_000, 2 * config.requestTimeout().toMillis()), TimeUnit.MILLISECONDS));
    RaftServerConfigKeys.Log.setSegmentCacheNumMax(p, 2);
    // Expert override, like etcd's --experimental flags: any JVM system property named raft.* is
    // passed to Ratis as is (e.g. CAPSTAN_JAVA_OPTS=-Draft.server.log.force.sync.num=64).
    for (String key : System.getProperties().stringPropertyNames()) {
      if (key.startsWith("raft.")) {
        p.set(key, System.getProperty(key));
        LOG.info("Ratis setting from system property: {}={}", key, System.getProperty(key));
      }
    }
    return p;
  }

  // ------------------------------------------------------------------ identity

  private static RaftGroupId groupId(KvStoreConfig config) {
    return RaftGroupId.valueOf(UUID.nameUUIDFromBytes(
        ("capstan-kvstore/" + config.initialClusterToken() + "/" + new TreeMap<>(config.initialCluster()))
            .getBytes(StandardCharsets.UTF_8)));
  }

  /** etcd derives a member's ID from its peer URLs and the cluster token; so do we. */
  static long memberId(String peerUrl, String token) {
    return hash64(peerUrl + "|" + token);
  }

  private static long clusterId(KvStoreConfig config) {
    StringBuilder ids = new StringBuilder();
    new TreeMap<>(config.initialCluster()).forEach((n, url) -> ids.append(memberId(url, config.initialClusterToken())).append(','));
    return hash64(ids + config.initialClusterToken());
  }

  private static long hash64(String s) {
    try {
      byte[] d = MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
      long v = 0;
      for (int i = 0; i < 8; i++) {
        v = (v << 8) | (d[i] & 0xff);
      }
      return v == 0 ? 1 : v;
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  public long memberId() {
    return memberIds.get(config.name());
  }

  public long memberIdOf(String name) {
    Long id = memberIds.get(name);
    return id == null ? hash64(name) : id;
  }

  /** This member's Raft peer ID. */
  String peerId() {
    return selfId.toString();
  }

  public long clusterId() {
    return clusterId;
  }

  public String name() {
    return config.name();
  }

  // ------------------------------------------------------------------ state

  public boolean isLeader() {
    return division.getInfo().isLeader();
  }

  /** The leader's member ID, or 0 when this member knows no leader. */
  public long leaderMemberId() {
    RaftPeerId leader = division.getInfo().getLeaderId();
    return leader == null ? 0 : memberIdOf(leader.toString());
  }

  public boolean hasLeader() {
    return division.getInfo().getLeaderId() != null;
  }

  public long term() {
    return division.getInfo().getCurrentTerm();
  }

  public long lastLogIndex() {
    var last = division.getRaftLog().getLastEntryTermIndex();
    return last == null ? 0 : last.getIndex();
  }

  /** Index of the oldest entry still in the log (entries before it were purged behind a snapshot). */
  public long firstLogIndex() {
    return division.getRaftLog().getStartIndex();
  }

  public long appliedIndex() {
    return division.getInfo().getLastAppliedIndex();
  }

  /** Entries this member sent through Ratis' client while not the leader (no forward possible). */
  public long clientProposals() {
    return clientProposals.get();
  }

  /** On the leader, followers that have not answered for an election timeout; 0 on a follower. */
  public int silentFollowers() {
    return silentFollowers;
  }

  /** How long each snapshot held up the apply thread: capturing the state to write. */
  public com.codahale.metrics.Timer snapshotCaptures() {
    return stateMachine.snapshots().captures();
  }

  /** How long each snapshot took to write in the background: file, fsync and MD5. */
  public com.codahale.metrics.Timer snapshotWrites() {
    return stateMachine.snapshots().writes();
  }

  /** Snapshots installed from the leader since start (a member that lagged behind a purged log). */
  public long snapshotsInstalled() {
    return stateMachine.snapshotsInstalled();
  }

  /** Loads of an installed snapshot tried again: a newer installation was replacing the snapshot directory. */
  public long snapshotReloadRetries() {
    return stateMachine.reloadRetries();
  }

  public long commitIndex() {
    return division.getRaftLog().getLastCommittedIndex();
  }

  /** The index of the first entry this member's log holds (the ones before are in a snapshot); -1 if it holds none. */
  public long logStartIndex() {
    return division.getRaftLog().getStartIndex();
  }

  /** The index of the last entry this member's log holds (written or not yet flushed). */
  public long logLastIndex() {
    return division.getRaftLog().getNextIndex() - 1;
  }

  /** The highest log index of a write this member has acknowledged to a client ({@link #localReadBarrier}). */
  public long acknowledgedIndex() {
    return acknowledgedIndex.get();
  }

  /** The current configuration's members: name and advertised peer address. */
  public Map<String, String> peers() {
    Map<String, String> out = new TreeMap<>();
    for (RaftPeer p : division.getRaftConf().getCurrentPeers()) {
      out.put(p.getId().toString(), "http://" + p.getAddress());
    }
    return out;
  }

  public KvStoreConfig config() {
    return config;
  }

  // ------------------------------------------------------------------ requests

  /**
   * Replicates {@code command} and returns what applying it gave. Fails with a {@link
   * KvException}: the command's own refusal (etcd's error), or UNAVAILABLE when no leader could
   * commit it in time. Commands proposed while others are being replicated share a log entry
   * ({@link ProposalBatcher}).
   */
  public CompletableFuture<ApplyResult> propose(RaftCommand command) {
    return Deadlines.within(batcher.propose(command), config.requestTimeout().toMillis())
        .handle((result, error) -> {
          if (error != null) {
            throw unavailable(error);
          }
          if (result.hasError()) {
            throw KvException.of(result.getError());
          }
          return result;
        });
  }

  /**
   * Replicates a command another member forwarded to this one as leader ({@link LeaderForward}),
   * sharing log entries with this member's own proposals. The result carries the command's own
   * refusal as an error; other failures (timeout, lost leadership) fail the future.
   */
  CompletableFuture<ApplyResult> proposeForwarded(RaftCommand command) {
    return Deadlines.within(batcher.propose(command, true), config.requestTimeout().toMillis())
        .handle((result, error) -> {
          if (error != null) {
            throw unavailable(error);
          }
          return result;
        });
  }

  /** The {@code capstan.kvstore.Forward} service, served beside the etcd API. */
  public io.grpc.ServerServiceDefinition forwardService() {
    return forward.service(this);
  }

  /** Commands this member forwarded to the leader, and received as leader (for metrics). */
  public long forwardedCommands() {
    return forward.forwardedCommands.get();
  }

  /** One look of the election watch (on its own thread), which schedules the next. */
  private void watchElection() {
    try {
      electionWatchLooks.incrementAndGet();
      ElectionWatch.Election e = electionWatch.look();
      if (e != null) {
        watchedElections.incrementAndGet();
        LOG.info("{} heard nothing from leader {} for {} ms (election timeout {} ms): standing for election",
            selfId, e.silentLeader(), e.silentMs(), e.timeoutMs());
      }
    } catch (RuntimeException e) {
      LOG.warn("the election watch failed; the next look tries again", e);
    }
    try {
      electionWatchTimer.schedule(this::watchElection, electionWatch.nextLookDelayNanos(), TimeUnit.NANOSECONDS);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      // closing
    }
  }

  /** Looks the election watch took (tests: it looks when a silence could reach the timeout, not every few ms). */
  public long electionWatchLooks() {
    return electionWatchLooks.get();
  }

  /** Ratis server-executor steps this member ran on its peer server's event loop ({@link ServerExecutorShortcut}); -1 when off. */
  public long inlineServerSteps() {
    return serverSteps == null ? -1 : serverSteps.inlineRuns();
  }

  /** Elections this member stood for because the election watch saw its leader silent ({@link ElectionWatch}). */
  public long watchedElections() {
    return watchedElections.get();
  }

  /** Times this member reloaded its state machine because Ratis lost the reload of an installed snapshot ({@link StalledApplyRepair}). */
  public long applyRepairs() {
    return applyRepair.repairs.get();
  }

  /** This member's state machine (tests). */
  KvStateMachine stateMachine() {
    return stateMachine;
  }

  /** This member's Ratis division (tests). */
  RaftServer.Division division() {
    return division;
  }

  /** Leader-only queries (lease keep-alive, time-to-live) this member sent to the leader's Forward service. */
  public long forwardedQueries() {
    return forward.forwardedQueries.get();
  }

  public long forwardReceivedCommands() {
    return forward.receivedCommands.get();
  }

  /**
   * This member acknowledged a write that the leader applied at Raft index {@code index} (or
   * later): reads from its own state must wait until it has applied as far ({@link
   * #localReadBarrier}).
   */
  private void acknowledged(long index) {
    acknowledgedIndex.accumulateAndGet(index, Math::max);
  }

  /**
   * Completes when this member has applied every write it has acknowledged, at once in the usual
   * case. A serializable read waits on it, so that a client sees its own writes on the member that
   * acknowledged them, as on an etcd member (which answers a write only after applying it). A
   * follower answers a forwarded write as soon as the leader has applied it; waiting for its own
   * apply there cost ~1 ms a serial put (p50 0.53 ms, p95 4 ms, measured), here only a read that
   * follows a write at once waits, typically less than a heartbeat round trip.
   */
  public CompletableFuture<Void> localReadBarrier() {
    return awaitApplied(acknowledgedIndex.get(), localReadWait);
  }

  /** Serializable reads that waited for this member to apply writes it had acknowledged. */
  public Timer localReadWait() {
    return localReadWait;
  }

  /** Forwards the leader refused before proposing anything (sent through Ratis' client then). */
  public long forwardFallbacks() {
    return forward.fallbacks.get();
  }

  /** Calls streams this member opened to other members ({@link LeaderForward#CALLS}). */
  public long forwardStreamsOpened() {
    return forward.streamsOpened.get();
  }

  /** Calls (forwards, checks, read indexes, queries) this member sent to others on its Calls streams. */
  public long forwardStreamCalls() {
    return forward.streamCalls.get();
  }

  /** Lease expiries this member skipped at apply: proposed by a leader in a term it no longer led. */
  public long staleLeaseExpiries() {
    return stateMachine.staleLeaseExpiries();
  }

  /** This member's forwards to the leader, send to reply. */
  public Timer forwardSends() {
    return forward.sends;
  }

  /** The forwards this member handled as leader, arrival to reply. */
  public Timer forwardsHandled() {
    return forward.handled;
  }

  /**
   * Replicates one log entry (a command or a batch of them) and returns what applying it gave. A
   * follower hands client commands to the leader's queue ({@link LeaderForward}) when it can;
   * everything else goes through Ratis.
   */
  private CompletableFuture<ApplyResult> replicate(RaftCommand entry, boolean mayForward) {
    return replicate(entry, mayForward, System.nanoTime() + config.requestTimeout().toNanos(), 0);
  }

  /**
   * @param waitFrom when this entry's wait for a reachable leader last (re)started ({@link
   *     System#nanoTime()}): its first refusal by the leader's client port, moved on at each look
   *     that finds Raft not hearing from that leader; 0 if it has not been refused
   */
  private CompletableFuture<ApplyResult> replicate(RaftCommand entry, boolean mayForward, long deadline,
      long waitFrom) {
    if (DIRECT_FORWARD && mayForward && !isLeader()) {
      // one look at the leader: an election that starts between two looks (this member standing
      // for election as the entry arrives) must not make a leader seen in the first look vanish
      // in the second and send the entry through Ratis' client (CI saw that once)
      RaftPeerId leaderId = division.getInfo().getLeaderId();
      if (leaderId == null && System.nanoTime() + LEADER_POLL.toNanos() < deadline && !timer.isShutdown()) {
        // An election is on: wait for its leader, as etcd's proposals do, rather than hand the
        // entry to Ratis' client, which may first spend seconds on a connection to a dead or
        // former leader.
        return replicateAfterPoll(entry, deadline, 0);
      }
      String leader = leaderId == null || leaderId.equals(selfId) ? null : clientAddressOf(leaderId);
      if (leader != null && forwardable(entry)) {
        if (forward.connected(leader)) {
          return forwardToLeader(entry, leader);
        }
        // A leader this member has not written to yet: connect first. Ratis' client would carry
        // the entry meanwhile, but right after a leader change it may spend seconds on a stale
        // connection first (a 5 s graceful channel shutdown was seen in the chaos test). Its
        // fallback runs on the submitter, not on a transport thread.
        return forward.whenConnected(leader, FORWARD_CONNECT_WAIT_MS).thenComposeAsync(up -> {
          if (up) {
            return forwardToLeader(entry, leader);
          }
          // Most likely dead, and this member has not yet seen its election timeout pass: wait
          // for the next leader as during an election, until Raft has been seen hearing from
          // that leader for a whole election timeout since the first refusal. Each look that
          // finds the leader silent (or this member a candidate) starts that timeout again:
          // Ratis' record of the leader's last word is also reset by a vote or pre-vote this
          // member grants and by a failed pre-vote of its own, all with the dead leader still
          // named, so one look can show a dead leader as just heard (CI saw a write go through
          // Ratis' client 4.6 s into a slow election, 8 ms before its leader was elected). A
          // leader that still heartbeats after that wait, but whose client URL is unreachable
          // from here, is reached through Ratis' client.
          long now = System.nanoTime();
          long since = waitFrom == 0 || leaderSilentFor() >= leaderSilentMs() ? now : waitFrom;
          if (now - since < config.electionTimeout().toNanos()
              && now + LEADER_POLL.toNanos() < deadline && !timer.isShutdown()) {
            return replicateAfterPoll(entry, deadline, since);
          }
          return replicateThroughRatis(entry);
        }, submitter);
      }
    }
    return replicateThroughRatis(entry);
  }

  /**
   * Replicates {@code entry} again after {@link #LEADER_POLL}, from the submitter (a client's send
   * must not run on the timer), until {@code deadline}.
   */
  private CompletableFuture<ApplyResult> replicateAfterPoll(RaftCommand entry, long deadline, long waitFrom) {
    CompletableFuture<ApplyResult> later = new CompletableFuture<>();
    try {
      timer.schedule(() -> {
        try {
          submitter.execute(() -> replicate(entry, true, deadline, waitFrom).whenComplete((r, e) -> {
            if (e != null) {
              later.completeExceptionally(e);
            } else {
              later.complete(r);
            }
          }));
        } catch (RejectedExecutionException closing) {
          later.completeExceptionally(unavailable(closing));
        }
      }, LEADER_POLL.toMillis(), TimeUnit.MILLISECONDS);
    } catch (RejectedExecutionException closing) {
      later.completeExceptionally(unavailable(closing));
    }
    return later;
  }

  /**
   * Milliseconds since this follower last heard from its leader over Raft (Ratis' own record);
   * {@link Long#MAX_VALUE} on a candidate (it stood for election because the leader went quiet,
   * and may still name that leader), 0 on a leader.
   */
  long leaderSilentFor() {
    var role = division.getInfo().getRoleInfoProto();
    if (role.hasFollowerInfo()) {
      return role.getFollowerInfo().getLeaderInfo().getLastRpcElapsedTimeMs();
    }
    return role.getRole() == org.apache.ratis.proto.RaftProtos.RaftPeerRole.CANDIDATE ? Long.MAX_VALUE : 0;
  }

  /**
   * How long a leader unheard of is taken for dead: one and a half heartbeat periods of Ratis'
   * leader, which sends something at least every half minimum election timeout (a quarter of
   * ours: 250 ms with the default 1 s election timeout, so 375 ms), and well short of the
   * election timeout after which this member would notice by itself.
   */
  long leaderSilentMs() {
    return config.electionTimeout().toMillis() * 3 / 8;
  }

  /** How often a follower with writes to send checks whether an election has given it a leader. */
  private static final Duration LEADER_POLL = Duration.ofMillis(20);

  /** How long a follower waits for its connection to a new leader before using Ratis' client. */
  private static final long FORWARD_CONNECT_WAIT_MS = 500;

  private static boolean forwardable(RaftCommand entry) {
    return commandsOf(entry).stream().allMatch(LeaderForward::forwardable);
  }

  /** The client commands a log entry carries: the batch's, or the entry itself. */
  private static List<RaftCommand> commandsOf(RaftCommand entry) {
    return entry.hasBatch() ? entry.getBatch().getCommandsList() : List.of(entry);
  }

  /** The leader's first client URL as {@code host:port}, if it published one over plain HTTP. */
  private String leaderClientAddress() {
    RaftPeerId leader = division.getInfo().getLeaderId();
    if (leader == null || leader.equals(selfId)) {
      return null;
    }
    return clientAddressOf(leader);
  }

  /** {@code host:port} of {@code peer}'s first client URL, from its published attributes; null if unknown or not plain HTTP. */
  private String clientAddressOf(RaftPeerId peer) {
    return members.get(memberIdOf(peer.toString()))
        .filter(m -> m.getClientUrlsCount() > 0 && m.getClientUrls(0).startsWith("http://"))
        .map(m -> Urls.parse(m.getClientUrls(0)).toString())
        .orElse(null);
  }

  private CompletableFuture<ApplyResult> forwardToLeader(RaftCommand entry, String leader) {
    List<RaftCommand> commands = commandsOf(entry);
    RaftPeerId leaderAtSend = division.getInfo().getLeaderId();
    long timeoutMs = config.requestTimeout().toMillis();
    ForwardRequest request = ForwardRequest.newBuilder()
        .setClusterId(clusterId)
        .setMemberId(memberId())
        .addAllCommands(commands)
        .build();
    return forward.send(leader, request, timeoutMs).handle((reply, error) -> {
      if (error == null) {
        if (reply.getResultsCount() != commands.size()) {
          return CompletableFuture.<ApplyResult>failedFuture(new KvException(Status.Code.INTERNAL,
              "etcdserver: the leader answered " + commands.size() + " commands with " + reply.getResultsCount() + " results"));
        }
        ApplyResult result = entry.hasBatch()
            ? ApplyResult.newBuilder().setBatch(ApplyResults.newBuilder()
                .addAllResults(reply.getResultsList())).build()
            : reply.getResults(0);
        acknowledged(reply.getAppliedIndex());
        return CompletableFuture.completedFuture(result);
      }
      if (LeaderForward.refused(error)) {
        // nothing was proposed: the Ratis client finds the leader (from the submit thread: this
        // is a transport thread, and the client's ordered send may wait for a window slot)
        forward.fallbacks.incrementAndGet();
        return CompletableFuture.supplyAsync(() -> replicateThroughRatis(entry), submitter).thenCompose(f -> f);
      }
      return CompletableFuture.<ApplyResult>failedFuture(forwardFailed(error, leaderAtSend));
    }).thenCompose(f -> f);
  }

  /**
   * A forward that failed after it may have been proposed: etcd's errors for a proposal whose fate
   * is unknown. It is not sent again (a second proposal could apply the write twice).
   */
  private KvException forwardFailed(Throwable error, RaftPeerId leaderAtSend) {
    Status s = Status.fromThrowable(error);
    RaftPeerId now = division.getInfo().getLeaderId();
    if (s.getCode() == Status.Code.UNAVAILABLE || s.getCode() == Status.Code.CANCELLED
        || now == null || !now.equals(leaderAtSend)) {
      return KvException.timeoutDueToLeaderFail();
    }
    if (s.getCode() == Status.Code.DEADLINE_EXCEEDED) {
      return KvException.timeout();
    }
    LOG.warn("forwarding to the leader failed: {}", s);
    return new KvException(s.getCode(), "etcdserver: forwarding to the leader failed: " + s.getDescription());
  }

  private int maxEntriesInFlight() {
    return isLeader() ? LEADER_IN_FLIGHT : FOLLOWER_IN_FLIGHT;
  }

  /** A new lane for the batcher at each term, and at this member becoming leader within one. */
  private long proposalLane() {
    return term() * 2 + (isLeader() ? 1 : 0);
  }

  /** Replicates one log entry through the local leader, or through Ratis' client to the leader. */
  private CompletableFuture<ApplyResult> replicateThroughRatis(RaftCommand entry) {
    Message msg = Message.valueOf(UnsafeByteOperations.unsafeWrap(entry.toByteArray()));
    CompletableFuture<RaftClientReply> reply;
    if (isLeader()) {
      reply = submitAsLeader(msg, System.nanoTime() + config.requestTimeout().toNanos());
    } else {
      clientProposals.incrementAndGet();
      if (DIRECT_FORWARD) {
        // rare (no leader's client URL known or connected, a refused forward, a non-client
        // command): worth a line, as such entries can wait seconds for Ratis' client to find
        // the leader
        List<RaftCommand> commands = commandsOf(entry);
        LOG.info("sending an entry of {} command(s) ({}) through Ratis' client (leader {}, its client URL {})",
            commands.size(), commands.isEmpty() ? "none" : commands.get(0).getCommandCase(),
            division.getInfo().getLeaderId(), leaderClientAddress());
      }
      reply = client.async().send(msg);
    }
    return Deadlines.within(reply, config.requestTimeout().toMillis())
        .handle((r, error) -> {
          if (error != null) {
            throw unavailable(error);
          }
          if (!r.isSuccess()) {
            throw unavailable(r.getException());
          }
          acknowledged(r.getLogIndex());
          return parseResult(r);
        });
  }

  private static ApplyResult parseResult(RaftClientReply r) {
    try {
      return RatisBytes.parse(ApplyResult.parser(), r.getMessage().getContent());
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
      throw new KvException(Status.Code.INTERNAL, "etcdserver: unreadable apply result: " + e.getMessage());
    }
  }

  /**
   * Completes once this member has applied everything committed before the call (ReadIndex):
   * a read made afterwards is linearizable.
   */
  public CompletableFuture<Void> readBarrier() {
    return readBarriers.await();
  }

  private static final RaftCommand READ_BARRIER = RaftCommand.newBuilder().setReadBarrier(Empty.getDefaultInstance()).build();

  /**
   * One read barrier round (reads share them through {@link ReadBarriers}), etcd's ReadIndex: a
   * read index the leader has confirmed with a majority after the round started ({@link
   * #leaderReadIndex}, asked of the leader by a follower), then this member's apply up to it. When
   * there is none to be had (no leader known or connected, no majority confirming in time, a
   * deposed leader refused), a no-op entry through the proposal queue (on a follower, the
   * leader's), then this member's apply of it: only a leader a majority follows can commit it, in
   * a log that holds every acknowledged write, so it cannot go stale either; it costs an fsync'd
   * entry, shared with the writes queued with it.
   *
   * <p>Not Ratis' ReadIndex: in Ratis 3.2.2 a leader answers a read index at once whenever its
   * commit index is one that a majority already acknowledged in an earlier heartbeat round
   * ({@code ReadIndexHeartbeats.addAppendEntriesListener}), without asking anyone again. A leader
   * that was deposed while paused (or cut off) and has not committed since still holds such an
   * index, and answered reads from its old state: PausedLeaderTest read the value from before
   * the pause in its first or third round.
   */
  private CompletableFuture<Void> readIndexRound() {
    if (RATIS_READ_INDEX) {
      Message msg = queryMessage(Query.newBuilder().setReadBarrier(Empty.getDefaultInstance()).build());
      return retrying(() -> succeeded(submitLocal(request(msg, RaftClientRequest.readRequestType())))).thenApply(r -> null);
    }
    if (LOG_BARRIER_ONLY) {
      return logReadBarrier();
    }
    CompletableFuture<Long> index;
    if (isLeader()) {
      index = leaderReadIndex();
    } else {
      String leader = leaderClientAddress();
      index = leader != null && forward.connected(leader)
          ? forward.readIndex(leader, clusterId, config.electionTimeout().toMillis())
          : CompletableFuture.failedFuture(new LeaderForward.Refused("no connected leader"));
    }
    return index.handle((i, e) -> {
      if (e != null) {
        readIndexFallbacks.incrementAndGet();
        return logReadBarrier();
      }
      readIndexConfirmed.incrementAndGet();
      return awaitApplied(i, null);
    }).thenCompose(f -> f);
  }

  private final AtomicLong readIndexConfirmed = new AtomicLong();
  private final AtomicLong readIndexFallbacks = new AtomicLong();

  /** Read rounds answered by a confirmed read index (the leader's, or the leader's through a follower). */
  public long readIndexConfirmed() {
    return readIndexConfirmed.get();
  }

  /** Read rounds that fell back to a log entry (no leader known or connected, or no majority confirmed in time). */
  public long readIndexFallbacks() {
    return readIndexFallbacks.get();
  }

  /** The fallback round, correct whatever the state of the cluster: a no-op entry, then its apply here. */
  private CompletableFuture<Void> logReadBarrier() {
    return propose(READ_BARRIER).thenCompose(applied -> localReadBarrier());
  }

  /**
   * Completes once this member has applied up to {@code index} (at once if it has); fails with
   * etcd's timeout after the request timeout. {@code waits}, if given, times the waits that were
   * not over at once.
   */
  private CompletableFuture<Void> awaitApplied(long index, Timer waits) {
    if (index <= appliedIndex()) {
      return CompletableFuture.completedFuture(null);
    }
    CompletableFuture<Void> f = appliedWaiters.await(index);
    if (f.isDone()) {
      return f;
    }
    Timer.Context waited = waits == null ? null : waits.time();
    return Deadlines.within(f, config.requestTimeout().toMillis()).handle((v, e) -> {
      if (waited != null) {
        waited.stop();
      }
      if (e != null) {
        throw KvException.timeout();
      }
      return null;
    });
  }

  /**
   * The leader's read index (etcd's ReadIndex): its commit index, confirmed by asking the other
   * members, after the call, whether they still follow it in its term; complete once a majority
   * (with itself) does. Fails when this member is not a leader that has committed an entry of its
   * term, or when no majority confirms within an election timeout (the caller then falls back to
   * a log entry). A member in that term naming this leader has not voted in a later one, so with
   * a majority of them no later leader can exist yet, and every write acknowledged before the call
   * is at or below the index.
   */
  CompletableFuture<Long> leaderReadIndex() {
    return leaderConfirmation().thenApply(Confirmed::index);
  }

  /** How many other members a majority of the members needs beside this one. */
  private int othersNeeded() {
    return group.getPeers().size() / 2;
  }

  /** A majority confirmed that this member leads in {@code term}, with {@code index} committed. */
  private record Confirmed(long term, long index) {
  }

  /** {@link #leaderReadIndex}, with the term the majority confirmed. */
  private CompletableFuture<Confirmed> leaderConfirmation() {
    long term = leaderTerm();
    if (term < 0 || !division.getInfo().isLeaderReady()) {
      return CompletableFuture.failedFuture(new LeaderForward.Refused("not the leader"));
    }
    Confirmed confirmed = new Confirmed(term, commitIndex());
    List<RaftPeer> others = group.getPeers().stream().filter(p -> !p.getId().equals(selfId)).toList();
    int needed = othersNeeded();
    if (needed == 0) {
      return CompletableFuture.completedFuture(confirmed);
    }
    CompletableFuture<Confirmed> out = new CompletableFuture<>();
    AtomicInteger yes = new AtomicInteger();
    AtomicInteger answered = new AtomicInteger();
    LeaderCheck check = LeaderCheck.newBuilder().setClusterId(clusterId).setTerm(term).setLeader(selfId.toString()).build();
    for (RaftPeer peer : others) {
      String address = clientAddressOf(peer.getId());
      CompletableFuture<Boolean> answer = address == null ? CompletableFuture.completedFuture(false)
          : forward.check(address, check, config.electionTimeout().toMillis());
      answer.whenComplete((follows, e) -> {
        if (Boolean.TRUE.equals(follows) && yes.incrementAndGet() == needed) {
          out.complete(confirmed);
        }
        if (answered.incrementAndGet() == others.size() && !out.isDone()) {
          out.completeExceptionally(new LeaderForward.Refused("leadership in term " + term + " not confirmed"));
        }
      });
    }
    return out;
  }

  /** The term this member leads in (it was leader in it at a moment during the call), or -1. */
  long leaderTerm() {
    long term = term();
    return isLeader() && term() == term ? term : -1;
  }

  /**
   * Completes once a leadership check that began after the call ({@link #leaderConfirmation},
   * shared by the calls waiting meanwhile) has confirmed with a majority that this member still
   * leads in {@code term}; fails otherwise. An answer this member computed as leader of {@code
   * term} before the call was then computed by the only leader there was: a member that was
   * paused (or cut off) while the others elected another one learns it only now, and its own
   * clock and state may be stale. etcd checks the same way before it renews a lease
   * ({@code ensureLeadership}); checking after the answer also covers a pause between the two.
   */
  CompletableFuture<Void> confirmLeadership(long term) {
    return confirmLeadership(term, 0);
  }

  /**
   * As {@link #confirmLeadership(long)}, when {@code vouched} other members will confirm it
   * themselves once the answer reaches them: with them the majority may be complete (one
   * follower and the leader in a 3-member cluster), and no member is asked.
   */
  CompletableFuture<Void> confirmLeadership(long term, int vouched) {
    if (othersNeeded() - vouched <= 0) {
      return CompletableFuture.completedFuture(null);
    }
    return leadershipChecks.await().handle((confirmed, e) -> {
      if (e != null || confirmed != term) {
        leaderQueriesUnconfirmed.incrementAndGet();
        throw new LeaderForward.Refused("leadership in term " + term + " not confirmed ("
            + (e != null ? e.getMessage() : "a majority confirmed term " + confirmed) + ")");
      }
      return null;
    });
  }

  private final AtomicLong leaderQueriesUnconfirmed = new AtomicLong();

  /** Lease queries this member answered as leader and then withheld: its leadership was not confirmed. */
  public long leaderQueriesUnconfirmed() {
    return leaderQueriesUnconfirmed.get();
  }

  /** Whether this member is a follower in {@code term} that names {@code leader} (a Raft peer ID) as its leader. */
  boolean follows(long term, String leader) {
    RaftPeerId known = division.getInfo().getLeaderId();
    return !isLeader() && term() == term && known != null && known.toString().equals(leader);
  }

  /** {@code -Dcapstan.read.ratis-read-index=true}: Ratis' ReadIndex instead (stale after a pause; for A/B runs only). */
  private static final boolean RATIS_READ_INDEX = Boolean.getBoolean("capstan.read.ratis-read-index");
  /** {@code -Dcapstan.read.log-barrier=true}: every read round is a log entry (for A/B runs). */
  private static final boolean LOG_BARRIER_ONLY = Boolean.getBoolean("capstan.read.log-barrier");

  /** Linearizable reads answered per ReadIndex round. */
  public com.codahale.metrics.Histogram readBarrierBatchSizes() {
    return readBarriers.batchSizes();
  }

  /**
   * Runs a leader-only query on the current leader and returns its answer's bytes. A follower asks
   * the leader over the Forward service ({@link LeaderForward#QUERY}), after waiting up to {@link
   * #FORWARD_CONNECT_WAIT_MS} for a connection to the leader's client port, and through Ratis'
   * client when that port does not answer (or its URL is unknown).
   */
  public CompletableFuture<byte[]> leaderQuery(Query query) {
    return retrying(() -> {
      RaftPeerId leader = division.getInfo().getLeaderId();
      if (leader == null) {
        return CompletableFuture.failedFuture(new IllegalStateException("no leader"));
      }
      if (leader.equals(selfId)) {
        return queryAsLeader(query, false).thenApply(KvStateMachine.LeaderAnswer::bytes);
      }
      String address = clientAddressOf(leader);
      if (address == null) {
        return queryThroughRatis(query, leader);
      }
      if (forward.connected(address)) {
        return forwardQuery(address, query, leader);
      }
      // A leader this member has not asked yet (right after a leader change): connect first, as
      // a write does, rather than go through Ratis' client, which may then first spend seconds on
      // a stale connection. Its fallback runs on the submitter, not on a transport thread.
      return forward.whenConnected(address, FORWARD_CONNECT_WAIT_MS).thenComposeAsync(
          up -> up ? forwardQuery(address, query, leader) : queryThroughRatis(query, leader), submitter);
    });
  }

  private CompletableFuture<byte[]> forwardQuery(String address, Query query, RaftPeerId leader) {
    return forward.query(address, clusterId, query, config.electionTimeout().toMillis())
        .thenApply(reply -> confirmedAnswer(reply, leader.toString()));
  }

  private CompletableFuture<byte[]> queryThroughRatis(Query query, RaftPeerId leader) {
    // Unordered: a read-only request to an explicit server inside Ratis' ordered stream stalls
    // the writes queued behind it on this client (seen as 6 s forwarded puts). Ratis' Netty
    // client has no unordered call, but its plain send is one: a request on its own, no stream.
    Message msg = queryMessage(query);
    return answer(CommitBroadcast.NETTY
        ? client.getClientRpc().sendRequestAsync(request(msg, RaftClientRequest.readRequestType(), leader))
        : client.async().sendReadOnlyUnordered(msg, leader));
  }

  /**
   * Runs a leader-only query on this member (refused unless it leads and has committed an entry
   * of its term): once it has applied what was committed when the query arrived, which includes
   * every write acknowledged before, the state machine answers and then withholds the answer
   * until a majority confirms the leadership ({@link #confirmLeadership}). Not through Ratis'
   * read path: its ReadIndex adds nothing to that check and its hand-offs between threads cost
   * more than the rest of a keep-alive.
   *
   * @param senderConfirms the query came from a follower that will check, once the answer is
   *     back, that it still follows this member in the answer's term ({@link #confirmedAnswer}):
   *     one member of the majority, so this member asks one fewer
   */
  CompletableFuture<KvStateMachine.LeaderAnswer> queryAsLeader(Query query, boolean senderConfirms) {
    if (!isLeader() || !division.getInfo().isLeaderReady()) {
      return CompletableFuture.failedFuture(new LeaderForward.Refused("not the leader"));
    }
    return awaitApplied(commitIndex(), null).thenCompose(applied -> {
      KvStateMachine.LeaderAnswer answer = stateMachine.leaderAnswer(query);
      return confirmLeadership(answer.term(), senderConfirms ? 1 : 0).thenApply(confirmed -> answer);
    });
  }

  /**
   * A forwarded query's answer, on the follower that asked: given only if this member still
   * follows {@code leader} in the term the leader answered in. Checked after the answer was
   * computed, so this member is one of the majority the leader needs to have confirmed its
   * leadership since ({@link #confirmLeadership}): it has not voted in a later term. A leader of
   * an older version sets no term and confirmed by itself.
   */
  byte[] confirmedAnswer(io.capstan.kvstore.proto.LeaderQueryReply reply, String leader) {
    if (reply.getTerm() != 0 && !follows(reply.getTerm(), leader)) {
      leaderQueriesUnconfirmed.incrementAndGet();
      throw new LeaderForward.Refused("the answer of " + leader + " in term " + reply.getTerm()
          + " is not confirmed: this member is in term " + term() + " with leader " + division.getInfo().getLeaderId());
    }
    return reply.getAnswer().toByteArray();
  }

  /** A query reply's content; a failed reply as its exception. */
  private static CompletableFuture<byte[]> answer(CompletableFuture<RaftClientReply> reply) {
    return succeeded(reply).thenApply(r -> r.getMessage().getContent().toByteArray());
  }

  /** {@code reply}, failed with the reply's exception when it is not a success. */
  private static CompletableFuture<RaftClientReply> succeeded(CompletableFuture<RaftClientReply> reply) {
    return reply.thenApply(r -> {
      if (!r.isSuccess()) {
        throw new CompletionException(r.getException() != null ? r.getException()
            : new IllegalStateException("Ratis reply without success or exception: " + r));
      }
      return r;
    });
  }

  /**
   * Submits to the local leader, as one Raft client call (client ID and call ID) for good: every
   * attempt after the first is that same call. A new leader that has not committed its first
   * entry, or a leader handing its leadership on (MoveLeader), refuses it before appending it
   * (tried again here after a pause). A NotLeaderException
   * means either that this member no longer led when it arrived, or that it stepped down while
   * the entry was appended and not yet applied here: Ratis answers every pending request so when
   * its leader steps down (PendingRequests#sendNotLeaderResponses), and the next leader may well
   * commit that entry. So the call goes to whoever leads next ({@link #resendAsSameCall}), whose
   * retry cache answers it with the entry's own result if the entry made it into its log. Sent
   * there as a new call it was applied twice: an increment in the partition chaos test (CI,
   * 2026-11-29) whose second copy failed its compare, so the client learned of no increment while
   * the counter had one more. Any other failure is reported, never re-proposed.
   */
  private CompletableFuture<RaftClientReply> submitAsLeader(Message msg, long deadline) {
    return submitAsLeader(request(msg, RaftClientRequest.writeRequestType()), deadline);
  }

  private CompletableFuture<RaftClientReply> submitAsLeader(RaftClientRequest request, long deadline) {
    return submitLocal(request).thenCompose(r -> {
      if (r.getNotLeaderException() != null) {
        return resendAsSameCall(request, deadline);
      }
      if (refusedBeforeAppend(r) && System.nanoTime() + RETRY_DELAY_MS * 1_000_000 < deadline) {
        CompletableFuture<RaftClientReply> again = new CompletableFuture<>();
        timer.schedule(() -> submitAsLeader(request, deadline).whenComplete((x, e) -> {
          if (e != null) {
            again.completeExceptionally(e);
          } else {
            again.complete(x);
          }
        }), RETRY_DELAY_MS, TimeUnit.MILLISECONDS);
        return again;
      }
      return CompletableFuture.completedFuture(r);
    });
  }

  /**
   * Sends {@code request} again, unchanged but for the member it is addressed to, to the member
   * that leads now, until a leader answers it or {@code deadline} passes. A leader serves client
   * requests only once it has applied its own term's first entry, so it has applied every entry
   * of earlier terms, and its retry cache (filled at apply on every member) holds the answer of
   * this call if its entry is in the log: it gives that answer rather than appending it again.
   */
  private CompletableFuture<RaftClientReply> resendAsSameCall(RaftClientRequest request, long deadline) {
    resentCalls.incrementAndGet();
    return retryingUntil(() -> {
      RaftPeerId leader = division.getInfo().getLeaderId();
      if (leader == null) {
        return CompletableFuture.failedFuture(KvException.noLeader());
      }
      RaftClientRequest to = RaftClientRequest.newBuilder()
          .setClientId(request.getClientId())
          .setServerId(leader)
          .setGroupId(request.getRaftGroupId())
          .setCallId(request.getCallId())
          .setMessage(request.getMessage())
          .setType(request.getType())
          .build();
      CompletableFuture<RaftClientReply> sent;
      if (leader.equals(selfId)) {
        sent = submitLocal(to);
      } else {
        // a request on its own, outside the client's ordered stream (Netty's plain send is one);
        // a failed connection is reset for the next attempt, as Ratis' client resets its own
        var rpc = client.getClientRpc();
        sent = (CommitBroadcast.NETTY ? rpc.sendRequestAsync(to) : rpc.sendRequestAsyncUnordered(to))
            .whenComplete((r, e) -> {
              if (e != null) {
                rpc.handleException(leader, e instanceof CompletionException && e.getCause() != null ? e.getCause() : e, true);
              }
            });
      }
      return sent.thenCompose(r -> r.getNotLeaderException() != null || refusedBeforeAppend(r)
          ? CompletableFuture.failedFuture(r.getException()) : CompletableFuture.completedFuture(r));
    }, deadline);
  }

  /**
   * Whether a leader refused {@code r}'s request before appending it: a new leader that has not
   * committed its first entry, or a leader handing its leadership on (which then answers
   * NotLeaderException, see {@link #submitAsLeader}).
   */
  private static boolean refusedBeforeAppend(RaftClientReply r) {
    return r.getException() instanceof LeaderNotReadyException
        || r.getException() instanceof org.apache.ratis.protocol.exceptions.LeaderSteppingDownException;
  }

  private final AtomicLong resentCalls = new AtomicLong();

  /**
   * etcd's MoveLeader: this member, if it leads, hands the leadership to the member with ID
   * {@code targetId} ({@link #transferLeadership}, within the request timeout). Fails as etcd
   * does: "not leader" on a follower, "bad leader transferee" for an ID that is not a member,
   * "leader transfer took too long" when the transfer does not complete; done at once if the
   * target already leads.
   */
  public CompletableFuture<Void> moveLeader(long targetId) {
    if (!isLeader()) {
      return CompletableFuture.failedFuture(KvException.notLeader());
    }
    RaftPeer target = division.getGroup().getPeers().stream()
        .filter(p -> memberIdOf(p.getId().toString()) == targetId).findFirst().orElse(null);
    if (target == null) {
      return CompletableFuture.failedFuture(KvException.badLeaderTransferee());
    }
    if (target.getId().equals(selfId)) {
      return CompletableFuture.completedFuture(null);
    }
    long timeoutMs = config.requestTimeout().toMillis();
    // Ratis' transfer call blocks: on a thread of its own (a rare operator's request)
    return CompletableFuture.runAsync(() -> {
      LOG.info("moving the leadership to {} at an operator's request", target.getId());
      long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
      for (int attempt = 1; ; attempt++) {
        long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
        try {
          transferLeadership(target.getId(), left);
          return;
        } catch (IOException e) {
          // The election the transfer started may still end with the target leading: wait for
          // it. Else, while this member still leads and time is left, ask again: Ratis 3.3.0
          // ends whatever transfer is pending when an earlier transfer's timer runs out
          // (TransferLeadership#complete), so one begun within a request timeout of the last
          // one on this member can fail early with TIMED_OUT.
          long settle = Math.min(deadline, System.nanoTime() + config.electionTimeout().toNanos());
          while (System.nanoTime() < settle && !isLeader() && !target.getId().equals(division.getInfo().getLeaderId())) {
            java.util.concurrent.locks.LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20));
          }
          if (target.getId().equals(division.getInfo().getLeaderId())) {
            return;
          }
          if (!isLeader() || deadline - System.nanoTime() < config.electionTimeout().toNanos()) {
            LOG.warn("moving the leadership to {} failed (attempt {}): {}", target.getId(), attempt, e.getMessage());
            throw KvException.leaderTransferTimeout();
          }
          LOG.info("moving the leadership to {}: attempt {} failed ({}), trying again", target.getId(), attempt, e.getMessage());
        }
      }
    }, r -> {
      Thread t = new Thread(r, "move-leader");
      t.setDaemon(true);
      t.start();
    });
  }

  /**
   * Hands the leadership to {@code target} (Ratis' transfer: the leader brings the target up to
   * date and asks it to stand at once); blocks for up to {@code timeoutMs}.
   */
  void transferLeadership(RaftPeerId target, long timeoutMs) throws IOException {
    RaftClientReply r = client.admin().transferLeadership(target, timeoutMs);
    if (!r.isSuccess()) {
      throw new IOException("leadership transfer to " + target + " failed: " + r.getException());
    }
  }

  /** Entries this member, as leader, sent again as the same call after it stepped down ({@link #resendAsSameCall}). */
  public long resentCalls() {
    return resentCalls.get();
  }

  /** Commands per log entry this member proposed (group commit). */
  public com.codahale.metrics.Histogram proposalBatchSizes() {
    return batcher.batchSizes();
  }

  /** Commands waiting for an entry slot. */
  public int proposalsQueued() {
    return batcher.queued();
  }

  /** This member is leader and has committed an entry of its term (it can serve writes). */
  public boolean isLeaderReady() {
    return division.getInfo().isLeaderReady();
  }

  private CompletableFuture<RaftClientReply> submitLocal(RaftClientRequest request) {
    try {
      return clientProtocol.submitClientRequestAsync(request);
    } catch (IOException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  private static Message queryMessage(Query q) {
    return Message.valueOf(UnsafeByteOperations.unsafeWrap(q.toByteArray()));
  }

  private RaftClientRequest request(Message msg, RaftClientRequest.Type type) {
    return request(msg, type, selfId);
  }

  private RaftClientRequest request(Message msg, RaftClientRequest.Type type, RaftPeerId server) {
    return RaftClientRequest.newBuilder()
        .setClientId(localClientId)
        .setServerId(server)
        .setGroupId(group.getGroupId())
        .setCallId(callIds.incrementAndGet())
        .setMessage(msg)
        .setType(type)
        .build();
  }

  /** Retries an idempotent read-side call until it succeeds or the request timeout passes. */
  private <T> CompletableFuture<T> retrying(Supplier<CompletableFuture<T>> call) {
    return retryingUntil(call, System.nanoTime() + config.requestTimeout().toNanos());
  }

  /** Tries {@code call} until it succeeds or {@code deadline} ({@link System#nanoTime}) passes. */
  private <T> CompletableFuture<T> retryingUntil(Supplier<CompletableFuture<T>> call, long deadline) {
    CompletableFuture<T> result = new CompletableFuture<>();
    attempt(call, deadline, result);
    return result;
  }

  private <T> void attempt(Supplier<CompletableFuture<T>> call, long deadline, CompletableFuture<T> result) {
    CompletableFuture<T> f;
    try {
      f = call.get();
    } catch (RuntimeException e) {
      f = CompletableFuture.failedFuture(e);
    }
    f.whenComplete((r, error) -> {
      if (error == null) {
        result.complete(r);
        return;
      }
      if (System.nanoTime() + RETRY_DELAY_MS * 1_000_000 > deadline || timer.isShutdown()) {
        result.completeExceptionally(unavailable(error));
        return;
      }
      timer.schedule(() -> attempt(call, deadline, result), RETRY_DELAY_MS, TimeUnit.MILLISECONDS);
    });
  }

  private KvException unavailable(Throwable error) {
    Throwable cause = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
    if (cause instanceof KvException kv) {
      return kv;
    }
    if (!hasLeader()) {
      return KvException.noLeader();
    }
    if (cause instanceof TimeoutException) {
      return KvException.timeout();
    }
    LOG.debug("Raft request failed", cause);
    return new KvException(Status.Code.UNAVAILABLE, "etcdserver: " + (cause == null ? "request failed" : cause.getMessage()));
  }

  // ------------------------------------------------------------------ leases

  /** Leader only: proposes the revocation of the leases that expired. */
  private void expireLeases() {
    try {
      // the term this member leads in: the expiry is applied only from an entry of that term
      long term = leaderTerm();
      if (term < 0 || !division.getInfo().isLeaderReady()) {
        return;
      }
      List<Long> expired = leaseClock.takeExpired(TimeUnit.SECONDS.toNanos(3));
      if (expired.isEmpty()) {
        return;
      }
      LOG.info("leases expired, proposing their revocation (term {}): {}", term,
          expired.stream().map(Long::toHexString).toList());
      propose(RaftCommand.newBuilder()
          .setLeaseExpire(io.capstan.kvstore.proto.LeaseExpire.newBuilder().addAllIds(expired).setTerm(term)).build())
          .whenComplete((r, e) -> {
            if (e != null) {
              LOG.warn("revoking expired leases failed; will retry: {}", e.getMessage());
            }
          });
    } catch (RuntimeException e) {
      LOG.warn("lease expiry check failed", e);
    }
  }

  public ScheduledExecutorService timer() {
    return timer;
  }

  /**
   * Publishes this member's Ratis metrics in {@code metrics}, now and every 10 s (Ratis creates
   * some of its registries later, e.g. the leader's when this member is elected).
   */
  public void publishRatisMetrics(com.codahale.metrics.MetricRegistry metrics) {
    RatisMetrics.sync(selfId.toString(), metrics);
    timer.scheduleWithFixedDelay(() -> {
      try {
        RatisMetrics.sync(selfId.toString(), metrics);
      } catch (RuntimeException e) {
        LOG.warn("publishing Ratis metrics failed", e);
      }
    }, 10, 10, TimeUnit.SECONDS);
  }

  /** Set when {@link #close} begins: from then on the Raft server closes because we close it. */
  private volatile boolean closing;
  /** Why this member's Raft server closed by itself, or null while it runs. */
  private volatile String raftLost;
  private java.util.function.Consumer<String> onRaftLost = reason -> {};

  /**
   * Runs {@code action} (once, with the reason) when this member's Raft server closes by itself:
   * at once if it already has. Ratis closes a member's server when its apply thread fails
   * ({@code StateMachineUpdater} "caught a Throwable"); the member would then go on answering
   * serializable reads from a state that no longer moves and forward writes it can never read
   * back. The kvstore process exits on it ({@code KvStoreMain}), as etcd panics on a failed apply,
   * so that its supervisor restarts it from its log.
   */
  public synchronized void onRaftLost(java.util.function.Consumer<String> action) {
    onRaftLost = action;
    if (raftLost != null) {
      action.accept(raftLost);
    }
  }

  /** Whether this member's Raft server runs (false once it closed by itself, or we closed it). */
  public boolean raftRunning() {
    return raftLost == null && !closing;
  }

  /** Notices this member's Raft server closing under it (the timer runs it every half second). */
  private void checkRaftServer() {
    if (closing || raftLost != null) {
      return;
    }
    var state = division.getInfo().getLifeCycleState();
    if (!state.isClosingOrClosed() && state != org.apache.ratis.util.LifeCycle.State.EXCEPTION) {
      return;
    }
    java.util.function.Consumer<String> action;
    synchronized (this) {
      if (closing || raftLost != null) {
        return;
      }
      raftLost = "its Raft server is " + state + " (applied index " + appliedIndex() + ", commit index " + commitIndex() + ")";
      action = onRaftLost;
    }
    LOG.error("this member's Raft server closed by itself: {}; it no longer replicates or applies anything", raftLost);
    action.accept(raftLost);
  }

  @Override
  public void close() {
    closing = true;
    CommitBroadcast.forget(division.getMemberId());
    forward.close();
    electionWatchTimer.shutdownNow();
    timer.shutdownNow();
    submitter.shutdownNow();
    try {
      client.close();
    } catch (IOException e) {
      LOG.warn("closing Raft client", e);
    }
    try {
      server.close();
    } catch (IOException e) {
      LOG.warn("closing Raft server", e);
    }
  }
}
