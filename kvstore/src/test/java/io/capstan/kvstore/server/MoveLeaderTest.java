package io.capstan.kvstore.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.capstan.kvstore.testing.Kv;
import io.capstan.kvstore.testing.MiniCluster;
import io.etcd.jetcd.api.MaintenanceGrpc;
import io.etcd.jetcd.api.MoveLeaderRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** etcd's Maintenance.MoveLeader: what the leader does with it, and the errors etcd gives. */
class MoveLeaderTest {
  private static MaintenanceGrpc.MaintenanceBlockingStub maintenance(MiniCluster c, int i) {
    return MaintenanceGrpc.newBlockingStub(c.channel(i)).withDeadlineAfter(20, TimeUnit.SECONDS);
  }

  @Test
  void theLeaderHandsItsLeadershipToTheNamedMemberAndRefusesWhatEtcdRefuses() {
    try (MiniCluster c = MiniCluster.start(3)) {
      int lead = c.waitForLeader(Duration.ofSeconds(30));
      int target = (lead + 1) % 3;
      int other = (lead + 2) % 3;
      long targetId = c.member(target).raft().memberId();

      assertThatThrownBy(() -> maintenance(c, other).moveLeader(MoveLeaderRequest.newBuilder().setTargetID(targetId).build()))
          .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
            assertThat(e.getStatus().getDescription()).isEqualTo("etcdserver: not leader");
          });
      assertThatThrownBy(() -> maintenance(c, lead).moveLeader(MoveLeaderRequest.newBuilder().setTargetID(0xabcdefL).build()))
          .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
            assertThat(e.getStatus().getDescription()).isEqualTo("etcdserver: bad leader transferee");
          });
      // to itself: nothing to do
      maintenance(c, lead).moveLeader(MoveLeaderRequest.newBuilder().setTargetID(c.member(lead).raft().memberId()).build());
      assertThat(c.member(lead).raft().isLeader()).isTrue();

      maintenance(c, lead).moveLeader(MoveLeaderRequest.newBuilder().setTargetID(targetId).build());
      await("the named member leads").atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(20))
          .until(() -> c.member(target).raft().isLeaderReady());
      assertThat(c.member(lead).raft().isLeader()).isFalse();
      Kv.put(c.channel(lead), "ml/after", "v");
      assertThat(Kv.get(c.channel(target), "ml/after", false)).isPresent();
    }
  }
}
