package io.capstan.kvstore.server;

import com.codahale.metrics.MetricRegistry;
import io.capstan.common.Urls;
import io.capstan.kvstore.KvStoreConfig;
import io.capstan.kvstore.mvcc.ClusterMembers;
import io.capstan.kvstore.mvcc.MvccStore;
import io.capstan.kvstore.proto.MemberAttributes;
import io.capstan.kvstore.proto.RaftCommand;
import io.capstan.kvstore.raft.RaftNode;
import io.capstan.kvstore.watch.WatchHub;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The etcd v3 gRPC API of one member, listening on every client URL, plus the member's
 * background duties tied to serving: publishing its client URLs through the log and sending
 * watch progress notifications.
 */
public final class EtcdGrpcServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(EtcdGrpcServer.class);
  /** gRPC's limit sits above etcd's request limit, so oversized requests get etcd's own error. */
  private static final int GRPC_OVERHEAD_BYTES = 512 * 1024;

  private final List<Server> servers;
  private final List<ExecutorService> executors;

  private EtcdGrpcServer(List<Server> servers, List<ExecutorService> executors) {
    this.servers = servers;
    this.executors = executors;
  }

  public static EtcdGrpcServer start(KvStoreConfig config, MvccStore store, ClusterMembers members,
      RaftNode raft, WatchHub hub, MetricRegistry metrics) throws IOException {
    ExecutorService readExecutor = Executors.newFixedThreadPool(4, daemon("kv-read"));
    ExecutorService sendExecutor = Executors.newFixedThreadPool(2, daemon("watch-send"));
    ExecutorService callExecutor = Executors.newCachedThreadPool(daemon("grpc-call"));
    List<ExecutorService> executors = List.of(readExecutor, sendExecutor, callExecutor);
    ServerContext ctx = new ServerContext(store, members, raft, metrics, readExecutor, config.maxRequestBytes(),
        config.quotaBackendBytes());
    List<Server> servers = new ArrayList<>();
    try {
      for (Urls.HostPort hp : config.listenClientUrls()) {
        Server s = NettyServerBuilder.forAddress(new InetSocketAddress(hp.host(), hp.port()))
            .addService(new KvService(ctx))
            .addService(new WatchService(ctx, hub, sendExecutor))
            .addService(new LeaseService(ctx, config.minLeaseTtlSeconds()).definition())
            .addService(new ClusterService(ctx))
            .addService(new MaintenanceService(ctx, config.dataDir().resolve("tmp")))
            // member to member: followers hand their clients' writes to the leader's queue
            .addService(raft.forwardService())
            .maxInboundMessageSize(config.maxRequestBytes() + GRPC_OVERHEAD_BYTES)
            .directExecutor()
            .callExecutor(new CallExecutors(callExecutor))
            // etcd clients ping often (etcdctl every 2 s by default); etcd permits it.
            .permitKeepAliveTime(1, TimeUnit.SECONDS)
            .permitKeepAliveWithoutCalls(true)
            .build()
            .start();
        servers.add(s);
      }
    } catch (IOException | RuntimeException e) {
      servers.forEach(Server::shutdownNow);
      executors.forEach(ExecutorService::shutdownNow);
      throw e;
    }
    long tickMs = config.progressNotifyInterval().toMillis();
    raft.timer().scheduleAtFixedRate(hub::progressTick, tickMs, tickMs, TimeUnit.MILLISECONDS);
    publishAttributes(config, members, raft);
    return new EtcdGrpcServer(servers, executors);
  }

  /** Proposes this member's name and client URLs until they are in the replicated state. */
  private static void publishAttributes(KvStoreConfig config, ClusterMembers members, RaftNode raft) {
    MemberAttributes mine = MemberAttributes.newBuilder()
        .setMemberId(raft.memberId())
        .setName(config.name())
        .addPeerUrls(config.initialAdvertisePeerUrl())
        .addAllClientUrls(config.advertiseClientUrls())
        .build();
    Runnable[] attempt = new Runnable[1];
    attempt[0] = () -> {
      if (mine.equals(members.get(raft.memberId()).orElse(null))) {
        return;
      }
      if (!raft.hasLeader()) {
        raft.timer().schedule(attempt[0], 200, TimeUnit.MILLISECONDS);
        return;
      }
      raft.propose(RaftCommand.newBuilder().setMemberAttributes(mine).build()).whenComplete((r, e) -> {
        if (e != null) {
          raft.timer().schedule(attempt[0], 1, TimeUnit.SECONDS);
        } else {
          LOG.info("published member attributes: name {}, client URLs {}", mine.getName(), mine.getClientUrlsList());
        }
      });
    };
    raft.timer().schedule(attempt[0], 100, TimeUnit.MILLISECONDS);
  }

  private static java.util.concurrent.ThreadFactory daemon(String name) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  public List<Integer> ports() {
    return servers.stream().map(Server::getPort).toList();
  }

  @Override
  public void close() {
    servers.forEach(Server::shutdownNow);
    for (Server s : servers) {
      try {
        s.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    executors.forEach(ExecutorService::shutdownNow);
  }
}
