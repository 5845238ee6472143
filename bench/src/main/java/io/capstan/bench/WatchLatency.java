package io.capstan.bench;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.WatchCreateRequest;
import io.etcd.jetcd.api.WatchGrpc;
import io.etcd.jetcd.api.WatchRequest;
import io.etcd.jetcd.api.WatchResponse;
import io.grpc.stub.StreamObserver;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Watch delivery latency: many watchers on one key, puts at a fixed rate carrying their send
 * time; the latency of a delivery is its receipt time minus that (one process, one clock).
 */
@Command(name = "watch-latency", description = "Time from put to event at each of many watchers.")
final class WatchLatency implements Callable<Integer> {
  @Mixin BenchMain.Common common;
  @Option(names = "--watchers", defaultValue = "1000") int watchers;
  @Option(names = "--streams", defaultValue = "10", description = "Watch streams the watchers are spread over (default: ${DEFAULT-VALUE}).") int streams;
  @Option(names = "--puts", defaultValue = "100") int puts;
  @Option(names = "--rate", defaultValue = "50", description = "Puts per second (default: ${DEFAULT-VALUE}).") int rate;
  @Option(names = "--warmup", defaultValue = "50", description = "Unmeasured puts first (their deliveries are not counted), "
      + "then more until the client's JIT is quiet (see --warmup-limit; 0: none) (default: ${DEFAULT-VALUE}).") int warmup;
  @Mixin ClientWarmUp.Limit warmUp;
  @Option(names = "--put-endpoint", description = "Where the puts go (default: the first connection to --endpoints), "
      + "e.g. the leader while the watchers are on a follower.") String putEndpoint;
  @Option(names = "--trace", description = "Writes one line a put to this file: its wall-clock send time (ms), "
      + "its own latency and its slowest delivery (ms), to set beside the members' GC logs.") java.nio.file.Path trace;

  @Override
  public Integer call() throws Exception {
    ByteString key = ByteString.copyFromUtf8("bench-watch-key");
    Latencies lat = new Latencies();
    AtomicInteger created = new AtomicInteger();
    AtomicLong deliveries = new AtomicLong();
    // set when the run ends: the streams then fail as their channels close, which is no news
    java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
    List<StreamObserver<WatchRequest>> requests = new ArrayList<>();
    java.util.concurrent.atomic.AtomicLongArray slowest = new java.util.concurrent.atomic.AtomicLongArray(puts);
    long[] sentAt = new long[puts];
    long[] ackedIn = new long[puts];
    try (Endpoints eps = new Endpoints(common.endpoints, common.conns)) {
      for (int s = 0; s < streams; s++) {
        StreamObserver<WatchRequest> req = WatchGrpc.newStub(eps.channel(s)).watch(new StreamObserver<>() {
          @Override
          public void onNext(WatchResponse r) {
            if (r.getCreated()) {
              created.incrementAndGet();
            }
            long now = System.nanoTime();
            for (Event e : r.getEventsList()) {
              if (e.getKv().getValue().size() >= 16) {
                ByteBuffer value = ByteBuffer.wrap(e.getKv().getValue().toByteArray());
                long took = now - value.getLong();
                int put = (int) value.getLong();
                if (put >= 0) { // a warm-up put's is -1
                  lat.add(took);
                  slowest.accumulateAndGet(put, took, Math::max);
                  deliveries.incrementAndGet();
                }
              }
            }
          }

          @Override
          public void onError(Throwable t) {
            if (!done.get()) {
              System.err.println("watch stream failed: " + t);
            }
          }

          @Override
          public void onCompleted() {}
        });
        requests.add(req);
      }
      for (int w = 0; w < watchers; w++) {
        StreamObserver<WatchRequest> req = requests.get(w % streams);
        synchronized (req) {
          req.onNext(WatchRequest.newBuilder().setCreateRequest(WatchCreateRequest.newBuilder().setKey(key)).build());
        }
      }
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (created.get() < watchers && System.nanoTime() < deadline) {
        Thread.sleep(10);
      }
      if (created.get() < watchers) {
        System.out.println("watch-latency: only " + created.get() + " of " + watchers + " watchers created");
        return 1;
      }
      Endpoints putEps = putEndpoint == null ? null : new Endpoints(putEndpoint, 1);
      var kv = KVGrpc.newBlockingStub(putEps == null ? eps.channel(0) : putEps.channel(0));
      long interval = TimeUnit.SECONDS.toNanos(1) / Math.max(rate, 1);
      long[] next = {System.nanoTime()};
      ClientWarmUp.run("watch-latency", warmup, 1, Math.max(rate, 1), warmUp.limit, n -> {
        for (int i = 0; i < n; i++) {
          Pacer.waitUntil(next[0]);
          next[0] += interval;
          put(kv, key, -1);
        }
        return 0; // a failed put throws
      });
      for (int i = 0; i < puts; i++) {
        Pacer.waitUntil(next[0]);
        next[0] += interval;
        sentAt[i] = System.currentTimeMillis();
        long sent = put(kv, key, i);
        ackedIn[i] = System.nanoTime() - sent;
      }
      long expected = (long) watchers * puts;
      deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (deliveries.get() < expected && System.nanoTime() < deadline) {
        Thread.sleep(10);
      }
      System.out.printf("watch-latency watchers=%d streams=%d puts=%d rate=%d/s: %s deliveries=%d/%d%n",
          watchers, streams, puts, rate, lat.summary(), deliveries.get(), expected);
      done.set(true);
      if (trace != null) {
        StringBuilder lines = new StringBuilder("# sent_ms put_ms slowest_delivery_ms\n");
        for (int i = 0; i < puts; i++) {
          lines.append(String.format("%d %.3f %.3f%n", sentAt[i], ackedIn[i] / 1e6, slowest.get(i) / 1e6));
        }
        java.nio.file.Files.writeString(trace, lines);
      }
      for (StreamObserver<WatchRequest> r : requests) {
        synchronized (r) {
          r.onCompleted();
        }
      }
      if (putEps != null) {
        putEps.close();
      }
      return deliveries.get() == expected ? 0 : 1;
    }
  }

  /** Puts the key with a value of its send time and {@code index} (-1: a warm-up put); returns the send time. */
  private static long put(KVGrpc.KVBlockingStub kv, ByteString key, int index) {
    long sent = System.nanoTime();
    byte[] v = ByteBuffer.allocate(16).putLong(sent).putLong(index).array();
    kv.withDeadlineAfter(30, TimeUnit.SECONDS).put(PutRequest.newBuilder().setKey(key).setValue(ByteString.copyFrom(v)).build());
    return sent;
  }
}
