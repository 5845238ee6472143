package io.capstan.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.LeaseGrpc;
import io.etcd.jetcd.api.LeaseKeepAliveRequest;
import io.etcd.jetcd.api.LeaseKeepAliveResponse;
import io.etcd.jetcd.api.LeaseRevokeRequest;
import io.etcd.jetcd.api.LeaseTimeToLiveRequest;
import io.etcd.jetcd.api.LeaseTimeToLiveResponse;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.nio.file.Path;
import java.nio.file.Paths;
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
 * moments after it resumes: it still believes it leads, and Ratis' ReadIndex (or its leader
 * lease) let it answer reads from its own state without asking anyone (RaftNode#readIndexRound).
 * So the reads are sent while it is stopped, after the new leader has acknowledged a newer write:
 * they wait in its socket and are the first thing it handles when it runs again; more follow
 * over its first 200 ms back. A write is queued the same way.
 *
 * <p>What must hold for each round: every read answered carries the newer value (a read that
 * fails is allowed: the member may not know the leader yet); the queued write, if acknowledged,
 * is in the store at the revision its response named; the paused member catches up afterwards.
 */
class PausedLeaderTest {
  private static final int ROUNDS = Integer.getInteger("capstan.pause.rounds", 5);
  private static final int QUEUED_READS = 8;
  private static final int LEASE_ROUNDS = Integer.getInteger("capstan.pause.lease-rounds", 3);
  /** The shortest TTL the members grant at their default 1 s election timeout is 2 s. */
  private static final long LEASE_TTL_SECONDS = 3;
  private static final ByteString KEY = ByteString.copyFromUtf8("pause/key");

  @Test
  void aLeaderPausedPastAnElectionServesNoStaleReadAndAcknowledgesNoUncommittedWrite() throws Exception {
    try (DistCluster c = new DistCluster(3).start(); MemberChannels ch = new MemberChannels(c)) {
      keepingLogs(c, "stale-reads", () -> staleReadRounds(c, ch));
    }
  }

  private static void staleReadRounds(DistCluster c, MemberChannels ch) throws Exception {
    for (int round = 0; round < ROUNDS; round++) {
      int old = ch.leaderIndex();
      ByteString before = ByteString.copyFromUtf8("round " + round + ": before the pause");
      ByteString after = ByteString.copyFromUtf8("round " + round + ": written by the next leader");
      put(ch.get(old), KEY, before);
      // a client reads it back from the leader, which confirms its leadership at this commit
      // index: Ratis' ReadIndex then answered later reads at that index without asking anyone
      // (RaftNode#readIndexRound)
      assertThat(get(ch.get(old), KEY).getKvs(0).getValue()).isEqualTo(before);

      c.pause(old);
      boolean resumed = false;
      try {
        ByteString queuedKey = ByteString.copyFromUtf8("pause/queued-" + round);
        CompletableFuture<PutResponse> queuedPut = putAsync(ch.get(old), queuedKey, after);
        int next = ch.leaderIndexOtherThan(old);
        long written = put(ch.get(next), KEY, after).getHeader().getRevision();
        // sent after the newer write was acknowledged: linearizability allows only that value
        List<CompletableFuture<RangeResponse>> reads = queuedThenResumed(c, old, () -> getAsync(ch.get(old), KEY));
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
          RangeResponse r = get(ch.get(next), queuedKey);
          assertThat(r.getKvsList()).as("the acknowledged write queued at the paused %s", c.name(old)).hasSize(1);
          assertThat(r.getKvs(0).getModRevision()).isEqualTo(queued.getHeader().getRevision());
        }
        System.out.printf("paused leader round %d: %s paused, %s led next; %d of %d reads answered (all fresh), "
            + "the queued write %s%n", round, c.name(old), c.name(next), answered, reads.size(),
            queued == null ? "failed" : "committed at revision " + queued.getHeader().getRevision());

        // the resumed member follows the new leader and catches up
        await(c.name(old) + " catches up").atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50)).untilAsserted(() -> {
          RangeResponse r = KVGrpc.newBlockingStub(ch.get(old)).withDeadlineAfter(2, TimeUnit.SECONDS)
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

  /**
   * A leader paused for longer than a lease's TTL finds, when it runs again, that its clock says
   * the lease expired, while the next leader (which gave every lease a full TTL when it took
   * over) has been renewing it for the client all along. The lease must survive: only the current
   * leader's clock may decide an expiry.
   */
  @Test
  void aPausedLeaderDoesNotRevokeALeaseTheNextLeaderKeptAlive() throws Exception {
    try (DistCluster c = new DistCluster(3).start(); MemberChannels ch = new MemberChannels(c)) {
      keepingLogs(c, "leases", () -> leaseRounds(c, ch));
    }
  }

  private static void leaseRounds(DistCluster c, MemberChannels ch) throws Exception {
    for (int round = 0; round < LEASE_ROUNDS; round++) {
      int old = ch.leaderIndex();
      int via = (old + 1) % c.size();
      ByteString key = ByteString.copyFromUtf8("pause/leased-" + round);
      long lease = LeaseGrpc.newBlockingStub(ch.get(via)).withDeadlineAfter(10, TimeUnit.SECONDS)
          .leaseGrant(LeaseGrantRequest.newBuilder().setTTL(LEASE_TTL_SECONDS).build()).getID();
      KVGrpc.newBlockingStub(ch.get(via)).withDeadlineAfter(10, TimeUnit.SECONDS)
          .put(PutRequest.newBuilder().setKey(key).setValue(key).setLease(lease).build());
      try (KeepAlive keeper = new KeepAlive(ch.get(via), lease)) {
        await("a first keep-alive").atMost(Duration.ofSeconds(10)).until(() -> keeper.renewals() > 0);
        long pausedAt = System.nanoTime();
        List<CompletableFuture<LeaseTimeToLiveResponse>> ttls;
        boolean resumed = false;
        c.pause(old);
        try {
          ch.leaderIndexOtherThan(old);
          // until the paused leader's clock, once it runs again, says the lease expired; the
          // next leader renews it meanwhile
          long renewed = keeper.renewals();
          try {
            await("the lease's TTL passed while " + c.name(old) + " was paused").atMost(Duration.ofSeconds(30))
                .pollInterval(Duration.ofMillis(100))
                .until(() -> System.nanoTime() - pausedAt > TimeUnit.SECONDS.toNanos(LEASE_TTL_SECONDS + 1)
                    && keeper.renewals() > renewed);
          } catch (org.awaitility.core.ConditionTimeoutException e) {
            throw new AssertionError("round " + round + ": no keep-alive through " + c.name(via) + " renewed the lease within 30 s of "
                + c.name(old) + "'s pause (" + keeper.report() + "); the members' leases and leaders: " + leaseLog(c), e);
          }
          // asked of the paused member while its clock is behind: when it runs again it still
          // believes it leads, and its lease clock says the lease ran out
          ttls = queuedThenResumed(c, old, () -> ttlAsync(ch.get(old), lease));
          resumed = true;
        } finally {
          if (!resumed) {
            c.resume(old);
          }
        }
        long resumedAt = System.nanoTime();
        int ttlsAnswered = 0;
        for (CompletableFuture<LeaseTimeToLiveResponse> ttl : ttls) {
          LeaseTimeToLiveResponse r = outcome(ttl);
          if (r != null) {
            ttlsAnswered++;
            assertThat(r.getTTL()).as("round %d: a TimeToLive %s answered after it resumed, for the lease the next leader kept alive",
                round, c.name(old)).isPositive();
          }
        }
        // two TTLs of keep-alives after it resumed: the lease and its key must be there throughout
        await("two TTLs after " + c.name(old) + " resumed").atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(200))
            .until(() -> {
              assertThat(keeper.problems()).as("keep-alives through %s (%s); the members' leases and leaders: %s",
                  c.name(via), keeper.report(), leaseLog(c)).isEmpty();
              return System.nanoTime() - resumedAt > TimeUnit.SECONDS.toNanos(2 * LEASE_TTL_SECONDS);
            });
        long ttl = LeaseGrpc.newBlockingStub(ch.get(via)).withDeadlineAfter(10, TimeUnit.SECONDS)
            .leaseTimeToLive(LeaseTimeToLiveRequest.newBuilder().setID(lease).build()).getTTL();
        assertThat(ttl).as("round %d: the lease kept alive through the next leader, after %s resumed (%s)", round,
            c.name(old), leaseLog(c)).isPositive();
        assertThat(get(ch.get(via), key).getKvsList()).as("the lease's key").hasSize(1);
        System.out.printf("paused leader, lease round %d: %s paused (and 200 ms back) %d ms, the lease outlived it (%d keep-alives, at most %d ms apart; "
            + "%d of %d TimeToLive asked of it answered, all positive; "
            + "%d expiry proposals in its log; %.0f stale expiries skipped by %s so far; %.0f lease answers withheld by %s so far, "
            + "its leadership unconfirmed)%n", round, c.name(old),
            (resumedAt - pausedAt) / 1_000_000, keeper.renewals(), keeper.longestGapMs(), ttlsAnswered, ttls.size(), c.logLines(old, "leases expired").size(),
            c.metric(via, "kvstore_lease_stale_expiries"), c.name(via), c.metric(old, "raft_leader_queries_unconfirmed"), c.name(old));
      }
      LeaseGrpc.newBlockingStub(ch.get(via)).withDeadlineAfter(10, TimeUnit.SECONDS)
          .leaseRevoke(LeaseRevokeRequest.newBuilder().setID(lease).build());
    }
  }

  private interface Rounds {
    void run() throws Exception;
  }

  /**
   * Runs {@code rounds}; when they fail, keeps the members' logs, thread dumps and metrics in
   * target/paused-leader-logs/{@code name}/ and prints each member's last lines about leadership,
   * elections and forwarding, so that a failure seen once in CI says what the members did.
   */
  private static void keepingLogs(DistCluster c, String name, Rounds rounds) throws Exception {
    try {
      rounds.run();
    } catch (Throwable t) {
      Path dir = c.keepLogs(Paths.get("target", "paused-leader-logs", name).toAbsolutePath(), t);
      StringBuilder lines = new StringBuilder();
      for (int i = 0; i < c.size(); i++) {
        List<String> about = c.logLines(i, "").stream().filter(l -> l.contains("leader") || l.contains("election")
            || l.contains("orward") || l.contains("WARN") || l.contains("ERROR")).toList();
        for (String line : about.subList(Math.max(0, about.size() - 60), about.size())) {
          lines.append('\n').append(c.name(i)).append(": ").append(line);
        }
      }
      System.out.println("paused leader (" + name + ") failed: " + t + "; member logs, thread dumps and metrics kept in "
          + dir + "; the members' last lines about leadership:" + lines);
      t.addSuppressed(new AssertionError("member logs, thread dumps and metrics kept in " + dir));
      throw t;
    }
  }

  /** Each member's log lines about lease expiry and leadership (for failure messages). */
  private static String leaseLog(DistCluster c) {
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < c.size(); i++) {
      for (String line : c.logLines(i, "")) {
        if (line.contains("lease") || line.contains("leader")) {
          out.append('\n').append(c.name(i)).append(": ").append(line);
        }
      }
    }
    return out.toString();
  }

  /** Keeps a lease alive through one member, a keep-alive every 300 ms, as a client would. */
  private static final class KeepAlive implements AutoCloseable {
    private final ManagedChannel ch;
    private final long lease;
    private final Thread thread;
    private final java.util.concurrent.atomic.AtomicLong renewals = new java.util.concurrent.atomic.AtomicLong();
    private final List<String> problems = java.util.Collections.synchronizedList(new ArrayList<>());
    /** The last failed keep-alives (for failure messages): when, since the start, and how. */
    private final java.util.Deque<String> failures = new java.util.concurrent.ConcurrentLinkedDeque<>();
    private final long startedAt = System.nanoTime();
    private volatile long lastRenewalAt = startedAt;
    private volatile long longestGapNanos;
    private volatile boolean stop;

    KeepAlive(ManagedChannel ch, long lease) {
      this.ch = ch;
      this.lease = lease;
      this.thread = new Thread(this::run, "keep-alive-" + lease);
      thread.start();
    }

    private void run() {
      while (!stop) {
        try {
          keepAliveOnce();
        } catch (Throwable t) { // recorded, not fatal: a keeper that died would look like a lease nobody renews
          failed(t instanceof ExecutionException && t.getCause() != null ? t.getCause() : t);
        }
        java.util.concurrent.locks.LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(300));
      }
    }

    /** One keep-alive on a stream of its own; throws if it got no answer (no leader during the election: the next tries again). */
    private void keepAliveOnce() throws Exception {
      CompletableFuture<LeaseKeepAliveResponse> reply = new CompletableFuture<>();
      StreamObserver<LeaseKeepAliveRequest> requests = LeaseGrpc.newStub(ch).withDeadlineAfter(2, TimeUnit.SECONDS)
          .leaseKeepAlive(observer(reply));
      try {
        requests.onNext(LeaseKeepAliveRequest.newBuilder().setID(lease).build());
        LeaseKeepAliveResponse r = reply.get(3, TimeUnit.SECONDS);
        requests.onCompleted();
        if (r.getTTL() <= 0) {
          problems.add("the lease was gone at keep-alive " + (renewals.get() + 1) + ": " + r);
        } else {
          long now = System.nanoTime();
          longestGapNanos = Math.max(longestGapNanos, now - lastRenewalAt);
          lastRenewalAt = now;
          renewals.incrementAndGet();
        }
      } catch (Exception e) {
        requests.onError(e);
        throw e;
      }
    }

    private void failed(Throwable t) {
      failures.addLast(String.format("%d ms: %s", (System.nanoTime() - startedAt) / 1_000_000, t));
      while (failures.size() > 10) {
        failures.pollFirst();
      }
    }

    long renewals() {
      return renewals.get();
    }

    List<String> problems() {
      return new ArrayList<>(problems);
    }

    /** The longest time between two renewals so far, in ms (the lease's TTL is the margin). */
    long longestGapMs() {
      return Math.max(longestGapNanos, System.nanoTime() - lastRenewalAt) / 1_000_000;
    }

    /** What went wrong so far: leases found gone, the last failed keep-alives, the longest gap. */
    String report() {
      return "keep-alives: " + renewals.get() + " renewed, the longest gap " + longestGapMs() + " ms; lease gone: " + problems()
          + "; last failures (ms since the keeper started): " + failures;
    }

    @Override
    public void close() throws InterruptedException {
      stop = true;
      thread.join(TimeUnit.SECONDS.toMillis(10));
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

  /**
   * Sends {@value #QUEUED_READS} requests to the paused {@code member} (they wait in its socket
   * and are the first thing it handles when it runs again), resumes it, and sends more over its
   * first 200 ms back, while it learns that it was deposed; returns them all.
   */
  private static <T> List<CompletableFuture<T>> queuedThenResumed(DistCluster c, int member,
      java.util.function.Supplier<CompletableFuture<T>> request) {
    List<CompletableFuture<T>> sent = new ArrayList<>();
    for (int i = 0; i < QUEUED_READS; i++) {
      sent.add(request.get());
    }
    c.resume(member);
    long resumedAt = System.nanoTime();
    while (System.nanoTime() - resumedAt < TimeUnit.MILLISECONDS.toNanos(200)) {
      sent.add(request.get());
      java.util.concurrent.locks.LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(2));
    }
    return sent;
  }

  private static CompletableFuture<LeaseTimeToLiveResponse> ttlAsync(ManagedChannel ch, long lease) {
    CompletableFuture<LeaseTimeToLiveResponse> out = new CompletableFuture<>();
    LeaseGrpc.newStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS)
        .leaseTimeToLive(LeaseTimeToLiveRequest.newBuilder().setID(lease).build(), observer(out));
    return out;
  }

  /** Completes {@code out} with a unary call's response or its error (the end after a response changes nothing). */
  private static <T> StreamObserver<T> observer(CompletableFuture<T> out) {
    return ChaosTest.observer(out::complete, out::completeExceptionally);
  }
}
