package io.capstan.bench;

import io.capstan.api.core.v1.ConfigMap;
import io.capstan.api.meta.v1.ObjectMeta;
import io.capstan.api.server.v1.ApiServerGrpc;
import io.capstan.api.server.v1.CreateRequest;
import io.capstan.api.server.v1.RawObject;
import io.capstan.api.server.v1.ResourceRef;
import io.capstan.api.server.v1.UpdateRequest;
import io.capstan.api.server.v1.WatchEvent;
import io.capstan.api.server.v1.WatchRequest;
import io.grpc.stub.StreamObserver;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Benchmarks of the api-server's gRPC API: object creates, and watch delivery to many watchers. */
final class ApiBench {
  private ApiBench() {}

  static ResourceRef configMaps(String name) {
    return ResourceRef.newBuilder().setVersion("v1").setResource("configmaps").setNamespace("default").setName(name).build();
  }

  static RawObject configMap(String name, String value) {
    return RawObject.newBuilder().setData(ConfigMap.newBuilder().setMetadata(ObjectMeta.newBuilder().setName(name))
        .putData("v", value).build().toByteString()).build();
  }

  /** Creates of small objects with many clients at once. */
  @Command(name = "api-create", description = "ConfigMap creates through an api-server (--endpoints = its gRPC address).")
  static final class Create implements Callable<Integer> {
    @Mixin BenchMain.Common common;
    @Option(names = "--clients", defaultValue = "64") int clients;
    @Option(names = "--total", defaultValue = "10000") int total;
    @Option(names = "--rate", defaultValue = "0",
        description = "Creates started per second on a fixed schedule, at most --clients in flight (0: as fast as they complete).")
    int rate;

    @Override
    public Integer call() throws Exception {
      String run = UUID.randomUUID().toString().substring(0, 6);
      try (Endpoints eps = new Endpoints(common.endpoints, common.conns)) {
        LoadDriver.run(Math.min(1000, total), clients, i -> ApiServerGrpc.newFutureStub(eps.channel(i)).withDeadlineAfter(30, TimeUnit.SECONDS)
            .create(CreateRequest.newBuilder().setRef(configMaps("")).setObject(configMap("warm-" + run + "-" + i, "x")).build()));
        LoadDriver.Result r = LoadDriver.run(total, clients, rate, i -> ApiServerGrpc.newFutureStub(eps.channel(i))
            .withDeadlineAfter(30, TimeUnit.SECONDS)
            .create(CreateRequest.newBuilder().setRef(configMaps("")).setObject(configMap("cm-" + run + "-" + i, "x")).build()));
        System.out.println(r.line("api-create clients=" + clients + " total=" + total + (rate > 0 ? " rate=" + rate + "/s" : "")));
        return r.errors() == 0 ? 0 : 1;
      }
    }
  }

  /** Watchers of one object; updates at a fixed rate carry their send time. */
  @Command(name = "api-watch", description = "Delivery latency of object updates to many api-server watchers.")
  static final class Watch implements Callable<Integer> {
    @Mixin BenchMain.Common common;
    @Option(names = "--watchers", defaultValue = "1000") int watchers;
    @Option(names = "--updates", defaultValue = "50") int updates;
    @Option(names = "--rate", defaultValue = "10", description = "Updates per second (default: ${DEFAULT-VALUE}).") int rate;

    @Override
    public Integer call() throws Exception {
      String name = "watched-" + UUID.randomUUID().toString().substring(0, 6);
      Latencies lat = new Latencies();
      AtomicLong deliveries = new AtomicLong();
      AtomicInteger started = new AtomicInteger();
      AtomicInteger ready = new AtomicInteger();
      try (Endpoints eps = new Endpoints(common.endpoints, common.conns)) {
        var api = ApiServerGrpc.newBlockingStub(eps.channel(0)).withDeadlineAfter(30, TimeUnit.SECONDS);
        RawObject created = api.create(CreateRequest.newBuilder().setRef(configMaps("")).setObject(configMap(name, "0")).build());
        String rv = ConfigMap.parseFrom(created.getData()).getMetadata().getResourceVersion();
        for (int w = 0; w < watchers; w++) {
          ApiServerGrpc.newStub(eps.channel(w)).watch(WatchRequest.newBuilder().setRef(configMaps(name)).setResourceVersion(rv).build(),
              new StreamObserver<WatchEvent>() {
                @Override
                public void onNext(WatchEvent e) {
                  try {
                    String v = ConfigMap.parseFrom(e.getObject().getData()).getDataOrDefault("v", "");
                    if (v.startsWith("t")) {
                      lat.add(System.nanoTime() - Long.parseLong(v.substring(1)));
                      deliveries.incrementAndGet();
                    } else if (v.equals("ready")) {
                      ready.incrementAndGet();
                    }
                  } catch (Exception ex) {
                    throw new IllegalStateException(ex);
                  }
                }

                @Override
                public void onError(Throwable t) {}

                @Override
                public void onCompleted() {}
              });
          started.incrementAndGet();
        }
        // Every watch is in place once it has seen this unmeasured update.
        ConfigMap current = ConfigMap.parseFrom(api.update(UpdateRequest.newBuilder().setRef(configMaps(name))
            .setObject(RawObject.newBuilder().setData(ConfigMap.parseFrom(created.getData()).toBuilder()
                .putData("v", "ready").build().toByteString())).build()).getData());
        long readyBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (ready.get() < watchers) {
          if (System.nanoTime() > readyBy) {
            System.err.println("only " + ready.get() + " of " + watchers + " watches saw the first update");
            return 1;
          }
          Thread.sleep(10);
        }
        long interval = TimeUnit.SECONDS.toNanos(1) / Math.max(1, rate);
        long next = System.nanoTime();
        for (int i = 0; i < updates; i++) {
          Pacer.waitUntil(next);
          next += interval;
          ConfigMap changed = current.toBuilder().putData("v", "t" + System.nanoTime()).build();
          current = ConfigMap.parseFrom(api.withDeadlineAfter(30, TimeUnit.SECONDS).update(UpdateRequest.newBuilder()
              .setRef(configMaps(name)).setObject(RawObject.newBuilder().setData(changed.toByteString())).build()).getData());
        }
        long expected = (long) watchers * updates;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (deliveries.get() < expected && System.nanoTime() < deadline) {
          Thread.sleep(10);
        }
        System.out.printf("api-watch watchers=%d updates=%d rate=%d/s: %s deliveries=%d/%d%n",
            watchers, updates, rate, lat.summary(), deliveries.get(), expected);
        return deliveries.get() == expected ? 0 : 1;
      }
    }
  }
}
