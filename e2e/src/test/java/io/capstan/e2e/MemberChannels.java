package io.capstan.e2e;

import static org.awaitility.Awaitility.await;

import io.etcd.jetcd.api.MaintenanceGrpc;
import io.etcd.jetcd.api.StatusRequest;
import io.etcd.jetcd.api.StatusResponse;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** One gRPC channel to each member's client port of a {@link DistCluster}, in member order, kept across the members' restarts (gRPC reconnects). */
final class MemberChannels implements AutoCloseable {
  final List<ManagedChannel> all = new ArrayList<>();
  private final DistCluster cluster;

  MemberChannels(DistCluster c) {
    this.cluster = c;
    for (int i = 0; i < c.size(); i++) {
      String[] hp = c.endpoint(i).split(":");
      // ChaosTest's final read of every key is a single response: ~4.5 MB after its long variant
      all.add(NettyChannelBuilder.forAddress(hp[0], Integer.parseInt(hp[1])).usePlaintext()
          .maxInboundMessageSize(64 << 20).build());
    }
  }

  ManagedChannel get(int i) {
    return all.get(i);
  }

  /** The running member that reports itself the Raft leader; waits up to 30 s for one. */
  int leaderIndex() {
    return leaderIndexOtherThan(-1);
  }

  /**
   * The running member other than {@code except} that reports itself the leader (while {@code
   * except}, say a paused leader, may still believe it leads); waits up to 30 s for one.
   */
  int leaderIndexOtherThan(int except) {
    return await("a leader" + (except >= 0 ? " other than " + cluster.name(except) : ""))
        .atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(20)).until(() -> {
          for (int i = 0; i < cluster.size(); i++) {
            if (i == except || !cluster.isAlive(i)) {
              continue;
            }
            try {
              StatusResponse s = MaintenanceGrpc.newBlockingStub(all.get(i)).withDeadlineAfter(1, TimeUnit.SECONDS)
                  .status(StatusRequest.getDefaultInstance());
              if (s.getLeader() != 0 && s.getLeader() == s.getHeader().getMemberId()) {
                return i;
              }
            } catch (StatusRuntimeException e) {
              // not answering (yet): ask the next one
            }
          }
          return -1;
        }, i -> i >= 0);
  }

  @Override
  public void close() throws InterruptedException {
    for (ManagedChannel ch : all) {
      ch.shutdownNow();
    }
    for (ManagedChannel ch : all) {
      ch.awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
