package io.capstan.bench;

import com.google.common.util.concurrent.ListenableFuture;
import com.google.protobuf.ByteString;
import io.capstan.common.CommonPool;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.MaintenanceGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.StatusRequest;
import io.etcd.jetcd.api.StatusResponse;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code capstan bench <workload>}: drives any etcd v3 endpoint set (Capstan's kvstore or etcd)
 * and prints one line of figures per run: ops/s and latency percentiles.
 */
@Command(name = "capstan bench", mixinStandardHelpOptions = true,
    description = "Benchmarks an etcd v3 API endpoint set; prints ops/s and latency percentiles.",
    subcommands = {BenchMain.Put.class, BenchMain.Range.class, WatchLatency.class, Failover.class, BenchMain.Status.class,
        ApiBench.Create.class, ApiBench.Watch.class, LeaseBench.class})
public final class BenchMain {

  /** Options every workload takes. */
  static final class Common {
    @Option(names = "--endpoints", required = true, description = "Comma-separated host:port list.")
    String endpoints;

    @Option(names = "--conns", defaultValue = "4", description = "gRPC connections, spread over the endpoints (default: ${DEFAULT-VALUE}).")
    int conns;
  }

  static ByteString key(int n, int keySize) {
    String s = String.format("%0" + Math.max(keySize, 1) + "d", n);
    return ByteString.copyFromUtf8(s.length() > keySize ? s.substring(s.length() - keySize) : s);
  }

  /** Puts: with many clients in flight (throughput), or one (serial latency); also fills the store. */
  @Command(name = "put", description = "Puts random keys; --clients 1 measures serial put latency.")
  static final class Put implements Callable<Integer> {
    @Mixin Common common;
    @Option(names = "--clients", defaultValue = "64", description = "Requests in flight (default: ${DEFAULT-VALUE}).") int clients;
    @Option(names = "--total", defaultValue = "10000") int total;
    @Option(names = "--key-size", defaultValue = "8") int keySize;
    @Option(names = "--val-size", defaultValue = "256") int valSize;
    @Option(names = "--key-space", defaultValue = "100000", description = "Keys are chosen from this many (default: ${DEFAULT-VALUE}).") int keySpace;
    @Option(names = "--sequential-keys", description = "Write keys 0..total-1 in order instead of random ones (fills a key space).") boolean sequential;
    @Option(names = "--warmup", defaultValue = "500", description = "Unmeasured puts first, then more until the client's "
        + "JIT is quiet (see --warmup-limit; 0: none) (default: ${DEFAULT-VALUE}).") int warmup;
    @Mixin ClientWarmUp.Limit warmUp;
    @Option(names = "--rate", defaultValue = "0", description = "Puts started per second, open loop (0: as fast as --clients allow).") int rate;

    @Override
    public Integer call() throws Exception {
      byte[] value = new byte[valSize];
      new Random(1).nextBytes(value);
      ByteString v = ByteString.copyFrom(value);
      Random rnd = new Random(42);
      try (Endpoints eps = new Endpoints(common.endpoints, common.conns)) {
        // one operation for the warm-up and the run: the client's JIT compiles the run's own code
        IntFunction<ListenableFuture<?>> put = i -> KVGrpc.newFutureStub(eps.channel(i)).withDeadlineAfter(30, TimeUnit.SECONDS)
            .put(PutRequest.newBuilder().setKey(key(sequential ? i % keySpace : rnd.nextInt(keySpace), keySize)).setValue(v).build());
        LoadDriver.warmUp("put", warmup, clients, warmUp.limit, put);
        LoadDriver.Result r = LoadDriver.run(total, clients, rate, put);
        System.out.println(r.line("put clients=" + clients + " total=" + total + " val=" + valSize + "B" + (rate > 0 ? " rate=" + rate + "/s" : "")));
        return r.errors() == 0 ? 0 : 1;
      }
    }
  }

  /** Gets of one key, linearizable (ReadIndex) or serializable (local). */
  @Command(name = "range", description = "Gets one key repeatedly.")
  static final class Range implements Callable<Integer> {
    @Mixin Common common;
    @Option(names = "--clients", defaultValue = "1") int clients;
    @Option(names = "--total", defaultValue = "5000") int total;
    @Option(names = "--consistency", defaultValue = "l", description = "l (linearizable) or s (serializable).") String consistency;
    @Mixin ClientWarmUp.Limit warmUp;
    @Option(names = "--rate", defaultValue = "0", description = "Gets started per second, open loop (0: as fast as --clients allow).") int rate;

    @Override
    public Integer call() throws Exception {
      ByteString k = ByteString.copyFromUtf8("bench-range-key");
      boolean serializable = "s".equals(consistency);
      try (Endpoints eps = new Endpoints(common.endpoints, common.conns)) {
        KVGrpc.newBlockingStub(eps.channel(0)).withDeadlineAfter(30, TimeUnit.SECONDS)
            .put(PutRequest.newBuilder().setKey(k).setValue(ByteString.copyFromUtf8("v")).build());
        RangeRequest req = RangeRequest.newBuilder().setKey(k).setSerializable(serializable).build();
        IntFunction<ListenableFuture<?>> range = i -> KVGrpc.newFutureStub(eps.channel(i)).withDeadlineAfter(30, TimeUnit.SECONDS).range(req);
        LoadDriver.warmUp("range", Math.min(500, total), clients, warmUp.limit, range);
        LoadDriver.Result r = LoadDriver.run(total, clients, rate, range);
        System.out.println(r.line("range consistency=" + consistency + " clients=" + clients + " total=" + total
            + (rate > 0 ? " rate=" + rate + "/s" : "")));
        return r.errors() == 0 ? 0 : 1;
      }
    }
  }

  /** Each endpoint's view: leader, Raft index and term, database size. */
  @Command(name = "status", description = "Prints each endpoint's status; with --leader only the leader's endpoint.")
  static final class Status implements Callable<Integer> {
    @Mixin Common common;
    @Option(names = "--leader", description = "Print only the endpoint that is the leader.") boolean leaderOnly;

    @Override
    public Integer call() {
      int failures = 0;
      for (String ep : common.endpoints.split(",")) {
        String address = ep.trim().replaceFirst("^https?://", "");
        var ch = Endpoints.open(address);
        try {
          StatusResponse s = MaintenanceGrpc.newBlockingStub(ch).withDeadlineAfter(5, TimeUnit.SECONDS)
              .status(StatusRequest.getDefaultInstance());
          boolean leader = s.getLeader() == s.getHeader().getMemberId();
          if (leaderOnly) {
            if (leader) {
              System.out.println(address);
            }
          } else {
            System.out.printf("%s member=%x leader=%s raftIndex=%d raftTerm=%d dbSize=%d version=%s%n", address,
                s.getHeader().getMemberId(), leader, s.getRaftIndex(), s.getRaftTerm(), s.getDbSize(), s.getVersion());
          }
        } catch (RuntimeException e) {
          failures++;
          if (!leaderOnly) {
            System.out.println(address + " unreachable: " + e.getMessage());
          }
        } finally {
          ch.shutdownNow();
        }
      }
      return failures == 0 ? 0 : 1;
    }
  }

  public static void main(String[] args) {
    CommonPool.atLeastTwoThreads();
    System.exit(new CommandLine(new BenchMain()).execute(args));
  }
}
