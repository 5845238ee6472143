package io.capstan.apiserver;

import io.capstan.common.CommonPool;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code capstan api-server}: flags to an {@link ApiServer}. */
@Command(name = "capstan api-server", mixinStandardHelpOptions = true,
    description = "Serves Capstan's API objects from the kvstore over gRPC (and admin HTTP).")
public final class ApiServerMain implements Callable<Integer> {
  @Option(names = "--kvstore-endpoints", required = true, description = "Comma-separated kvstore (or etcd) client URLs.")
  String kvstoreEndpoints;

  @Option(names = "--bind-address", defaultValue = "127.0.0.1", description = "Address to listen on (default: ${DEFAULT-VALUE}).")
  String bindAddress;

  @Option(names = "--grpc-port", defaultValue = "6443", description = "gRPC port for components (default: ${DEFAULT-VALUE}).")
  int grpcPort;

  @Option(names = "--http-port", defaultValue = "8080", description = "HTTP port: /metrics, /healthz, /readyz (default: ${DEFAULT-VALUE}).")
  int httpPort;

  @Option(names = "--watch-cache-size", defaultValue = "1000", description = "Events kept per resource for watches resuming from a past version (default: ${DEFAULT-VALUE}).")
  int watchCacheSize;

  @Option(names = "--etcd-compaction-interval", defaultValue = "5m", description = "How often the replicas compact the kvstore's "
      + "history, keeping at least that much of it (kube-apiserver's flag); 0 for never (default: ${DEFAULT-VALUE}).")
  String compactionInterval;

  @Override
  public Integer call() throws Exception {
    java.time.Duration every;
    try {
      every = io.capstan.common.GoDurations.parseFlag("--etcd-compaction-interval", compactionInterval);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(new CommandLine(this), e.getMessage());
    }
    if (every.isNegative()) {
      throw new CommandLine.ParameterException(new CommandLine(this), "--etcd-compaction-interval must not be negative");
    }
    ApiServer server = ApiServer.start(kvstoreEndpoints, bindAddress, grpcPort, httpPort, watchCacheSize, every);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.close();
      stopped.countDown();
    }, "shutdown"));
    stopped.await();
    return 0;
  }

  public static void main(String[] args) {
    CommonPool.atLeastTwoThreads();
    System.exit(new CommandLine(new ApiServerMain()).execute(args));
  }
}
