package io.capstan.bench;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.PutRequest;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Serial puts for a while, moving to the next endpoint on any error; reports the longest time
 * between two acknowledged writes. Kill the leader while it runs to measure failover.
 */
@Command(name = "failover", description = "Longest gap between acknowledged serial writes (kill the leader meanwhile).")
final class Failover implements Callable<Integer> {
  @Mixin BenchMain.Common common;
  @Option(names = "--duration", defaultValue = "20", description = "Seconds to run (default: ${DEFAULT-VALUE}).") int duration;
  @Option(names = "--timeout-ms", defaultValue = "500", description = "Deadline of each put (default: ${DEFAULT-VALUE}).") int timeoutMs;

  @Override
  public Integer call() throws Exception {
    try (Endpoints eps = new Endpoints(common.endpoints, eps(common))) {
      int ep = 0;
      long start = System.nanoTime();
      long end = start + TimeUnit.SECONDS.toNanos(duration);
      long lastAck = start;
      long maxGap = 0;
      long maxGapAt = 0;
      long writes = 0;
      long errors = 0;
      while (System.nanoTime() < end) {
        try {
          KVGrpc.newBlockingStub(eps.channel(ep)).withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS)
              .put(PutRequest.newBuilder().setKey(ByteString.copyFromUtf8("failover/" + (writes % 1000)))
                  .setValue(ByteString.copyFromUtf8("v")).build());
          long now = System.nanoTime();
          if (now - lastAck > maxGap) {
            maxGap = now - lastAck;
            maxGapAt = lastAck - start;
          }
          lastAck = now;
          writes++;
        } catch (RuntimeException e) {
          errors++;
          ep++;
        }
      }
      System.out.printf("failover: max gap between acknowledged writes=%s (starting at t=%.1fs) writes=%d errors=%d%n",
          Latencies.ms(maxGap), maxGapAt / 1e9, writes, errors);
      return 0;
    }
  }

  /** One connection per endpoint, so that moving on after an error means another member. */
  private static int eps(BenchMain.Common c) {
    return c.endpoints.split(",").length;
  }
}
