package io.capstan.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A leader that stops running (SIGSTOP: a long GC pause, a stalled VM) while the others elect a
 * new one, and then runs on, must not answer a linearizable read with what it held before, nor
 * acknowledge a write that the cluster did not commit. The dangerous moment is the first
 * millisecond after it resumes: it still believes it leads, and with Ratis' leader lease on it
 * could answer reads from its own state without asking anyone. So the reads are sent while it is
 * stopped, after the new leader has acknowledged a newer write: they wait in its socket and are
 * the first thing it handles when it runs again. A write is queued the same way.
 *
 * <p>What must hold for each round: every read answered carries the newer value (a read that
 * fails is allowed: the member may not know the leader yet); the queued write, if acknowledged,
 * is in the store at the revision its response named; the paused member catches up afterwards.
 */
class PausedLeaderTest {
  private static final int ROUNDS = Integer.getInteger("capstan.pause.rounds", 5);
  private static final int QUEUED_READS = 8;
  private static final ByteString KEY = ByteString.copyFromUtf8("pause/key");

  @Test
  void aLeaderPausedPastAnElectionServesNoStaleReadAndAcknowledgesNoUncommittedWrite() throws Exception {
    try (DistCluster c = new DistCluster(3).start(); MemberChannels ch = new MemberChannels(c)) {
      for (int round = 0; round < ROUNDS; round++) {
        int old = ch.leaderIndex();
        ByteString before = ByteString.copyFromUtf8("round " + round + ": before the pause");
        ByteString after = ByteString.copyFromUtf8("round " + round + ": written by the next leader");
        put(ch.all.get(old), KEY, before);

        c.pause(old);
        boolean resumed = false;
        try {
          ByteString queuedKey = ByteString.copyFromUtf8("pause/queued-" + round);
          CompletableFuture<PutResponse> queuedPut = putAsync(ch.all.get(old), queuedKey, after);
          int next = ch.leaderIndexOtherThan(old);
          long written = put(ch.all.get(next), KEY, after).getHeader().getRevision();
          // sent after the newer write was acknowledged: linearizability allows only that value
          List<CompletableFuture<RangeResponse>> reads = new ArrayList<>();
          for (int i = 0; i < QUEUED_READS; i++) {
            reads.add(getAsync(ch.all.get(old), KEY));
          }
          c.resume(old);
          resumed = true;

          int answered = 0;
          for (CompletableFuture<RangeResponse> read : reads) {
            RangeResponse r = outcome(read);
            if (r != null) {
              answered++;
              assertThat(r.getKvsList()).as("a linearizable read from %s right after it resumed", c.name(old)).hasSize(1);
              KeyValue kv = r.getKvs(0);
              assertThat(kv.getValue().toStringUtf8()).as("round %d: a linearizable read %s answered after it resumed",
                  round, c.name(old)).isEqualTo(after.toStringUtf8());
              assertThat(kv.getModRevision()).isGreaterThanOrEqualTo(written);
              assertThat(r.getHeader().getRevision()).isGreaterThanOrEqualTo(written);
            }
          }
          PutResponse queued = outcome(queuedPut);
          if (queued != null) {
            RangeResponse r = get(ch.all.get(next), queuedKey);
            assertThat(r.getKvsList()).as("the acknowledged write queued at the paused %s", c.name(old)).hasSize(1);
            assertThat(r.getKvs(0).getModRevision()).isEqualTo(queued.getHeader().getRevision());
          }
          System.out.printf("paused leader round %d: %s paused, %s led next; %d of %d queued reads answered (all fresh), "
              + "the queued write %s%n", round, c.name(old), c.name(next), answered, QUEUED_READS,
              queued == null ? "failed" : "committed at revision " + queued.getHeader().getRevision());

          // the resumed member follows the new leader and catches up
          await(c.name(old) + " catches up").atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50)).untilAsserted(() -> {
            RangeResponse r = KVGrpc.newBlockingStub(ch.all.get(old)).withDeadlineAfter(2, TimeUnit.SECONDS)
                .range(RangeRequest.newBuilder().setKey(KEY).setSerializable(true).build());
            assertThat(r.getKvsList()).extracting(KeyValue::getValue).containsExactly(after);
          });
        } finally {
          if (!resumed) {
            c.resume(old);
          }
        }
      }
    }
  }

  /** The response, or null when the call failed (any status: the member may have had no leader). */
  private static <T> T outcome(CompletableFuture<T> call) throws InterruptedException {
    try {
      return call.get(60, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof StatusRuntimeException) {
        return null;
      }
      throw new AssertionError("the call failed with something other than a gRPC status", e.getCause());
    } catch (java.util.concurrent.TimeoutException e) {
      throw new AssertionError("no answer within 60 s (its deadline is 20 s)", e);
    }
  }

  private static PutResponse put(ManagedChannel ch, ByteString key, ByteString value) {
    return KVGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
        .put(PutRequest.newBuilder().setKey(key).setValue(value).build());
  }

  private static RangeResponse get(ManagedChannel ch, ByteString key) {
    return KVGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS).range(RangeRequest.newBuilder().setKey(key).build());
  }

  private static CompletableFuture<PutResponse> putAsync(ManagedChannel ch, ByteString key, ByteString value) {
    CompletableFuture<PutResponse> out = new CompletableFuture<>();
    KVGrpc.newStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS)
        .put(PutRequest.newBuilder().setKey(key).setValue(value).build(), observer(out));
    return out;
  }

  private static CompletableFuture<RangeResponse> getAsync(ManagedChannel ch, ByteString key) {
    CompletableFuture<RangeResponse> out = new CompletableFuture<>();
    KVGrpc.newStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS).range(RangeRequest.newBuilder().setKey(key).build(), observer(out));
    return out;
  }

  /** Completes {@code out} with a unary call's response or its error (the end after a response changes nothing). */
  private static <T> StreamObserver<T> observer(CompletableFuture<T> out) {
    return ChaosTest.observer(out::complete, out::completeExceptionally);
  }
}
