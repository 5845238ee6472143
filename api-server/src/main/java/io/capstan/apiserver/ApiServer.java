package io.capstan.apiserver;

import com.codahale.metrics.MetricRegistry;
import io.capstan.apiserver.grpc.ApiServerService;
import io.capstan.apiserver.registry.Registry;
import io.capstan.apiserver.rest.RestHandler;
import io.capstan.apiserver.storage.EtcdClient;
import io.capstan.apiserver.storage.HistoryCompactor;
import io.capstan.common.AdminHttpServer;
import io.etcd.jetcd.api.MaintenanceGrpc;
import io.etcd.jetcd.api.StatusRequest;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One api-server replica: gRPC for components on one port; REST/JSON for people and kubectl, with
 * /metrics, /healthz and /readyz, on Netty on another. Stateless: any number run against the same kvstore.
 */
public final class ApiServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ApiServer.class);
  private final EtcdClient etcd;
  private final Server grpc;
  private final AdminHttpServer admin;
  private final ApiServerService service;
  private final java.util.concurrent.ExecutorService rest;
  private final HistoryCompactor compactor;

  private ApiServer(EtcdClient etcd, Server grpc, AdminHttpServer admin, java.util.concurrent.ExecutorService rest,
      ApiServerService service, HistoryCompactor compactor) {
    this.compactor = compactor;
    this.rest = rest;
    this.service = service;
    this.etcd = etcd;
    this.grpc = grpc;
    this.admin = admin;
  }

  /** Starts serving; ports may be 0 (then see {@link #grpcPort()} and {@link #httpPort()}). */
  public static ApiServer start(String kvstoreEndpoints, String host, int grpcPort, int httpPort) throws IOException {
    return start(kvstoreEndpoints, host, grpcPort, httpPort, 1000);
  }

  /** @param watchWindow events kept per resource for resuming watches */
  public static ApiServer start(String kvstoreEndpoints, String host, int grpcPort, int httpPort, int watchWindow)
      throws IOException {
    return start(kvstoreEndpoints, host, grpcPort, httpPort, watchWindow, DEFAULT_COMPACTION_INTERVAL);
  }

  /** kube-apiserver's default {@code --etcd-compaction-interval}. */
  public static final java.time.Duration DEFAULT_COMPACTION_INTERVAL = java.time.Duration.ofMinutes(5);

  /**
   * @param watchWindow events kept per resource for resuming watches
   * @param compactionInterval how often the replicas compact the kvstore's history ({@link
   *     HistoryCompactor}); zero for never
   */
  public static ApiServer start(String kvstoreEndpoints, String host, int grpcPort, int httpPort, int watchWindow,
      java.time.Duration compactionInterval) throws IOException {
    EtcdClient etcd = new EtcdClient(kvstoreEndpoints);
    MetricRegistry metrics = new MetricRegistry();
    ApiServerService service = new ApiServerService(Registry.builtIn(), etcd, watchWindow);
    try {
      service.ensureInitialNamespaces();
    } catch (RuntimeException e) {
      etcd.close();
      throw e;
    }
    Server grpc = NettyServerBuilder.forAddress(new InetSocketAddress(host, grpcPort))
        .addService(service)
        .maxInboundMessageSize(2 * 1024 * 1024)
        .build().start();
    java.util.concurrent.ExecutorService rest = restExecutor();
    AdminHttpServer admin;
    try {
      admin = AdminHttpServer.start(host, httpPort, metrics, AdminHttpServer.Check::passing, () -> kvstoreReachable(etcd),
          new RestHandler(service, Registry.builtIn()), rest, RestHandler.MAX_BODY,
          Integer.getInteger("capstan.http.max-in-flight", 600));
    } catch (RuntimeException e) {
      rest.shutdownNow();
      grpc.shutdownNow();
      etcd.close();
      throw e;
    }
    HistoryCompactor compactor = null;
    if (!compactionInterval.isZero()) {
      compactor = HistoryCompactor.start(etcd, compactionInterval);
      metrics.register("apiserver_storage_compactions_total", (com.codahale.metrics.Gauge<Long>) compactor::compactions);
    }
    LOG.info("api-server serving gRPC on {} and HTTP on {} against kvstore {}", grpc.getPort(), admin.port(), kvstoreEndpoints);
    return new ApiServer(etcd, grpc, admin, rest, service, compactor);
  }

  /**
   * Threads REST handlers run on while they wait for the kvstore ({@code -Dcapstan.http.workers},
   * default 64). Requests beyond that queue, up to {@code -Dcapstan.http.max-in-flight} (default
   * 600, kube-apiserver's 400 reads + 200 writes) running or queued; beyond that they get 429.
   * Watches hold no thread and do not count once started.
   */
  private static java.util.concurrent.ExecutorService restExecutor() {
    int n = Integer.getInteger("capstan.http.workers", 64);
    java.util.concurrent.atomic.AtomicInteger seq = new java.util.concurrent.atomic.AtomicInteger();
    return java.util.concurrent.Executors.newFixedThreadPool(n, r -> {
      Thread t = new Thread(r, "rest-" + seq.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
  }

  private static AdminHttpServer.Check kvstoreReachable(EtcdClient etcd) {
    try {
      MaintenanceGrpc.newBlockingStub(etcd.channel()).withDeadlineAfter(2, TimeUnit.SECONDS).status(StatusRequest.getDefaultInstance());
      return AdminHttpServer.Check.passing();
    } catch (RuntimeException e) {
      return AdminHttpServer.Check.failing("kvstore unreachable: " + e.getMessage());
    }
  }

  public int grpcPort() {
    return grpc.getPort();
  }

  public int httpPort() {
    return admin.port();
  }

  @Override
  public void close() {
    LOG.info("api-server stopping");
    if (compactor != null) {
      compactor.close();
    }
    grpc.shutdownNow();
    service.close();
    admin.close();
    rest.shutdownNow();
    etcd.close();
  }
}
