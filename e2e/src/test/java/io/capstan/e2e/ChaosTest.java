package io.capstan.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.Compare;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.LeaseGrpc;
import io.etcd.jetcd.api.LeaseKeepAliveRequest;
import io.etcd.jetcd.api.LeaseKeepAliveResponse;
import io.etcd.jetcd.api.LeaseTimeToLiveRequest;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.TxnRequest;
import io.etcd.jetcd.api.TxnResponse;
import io.etcd.jetcd.api.WatchCreateRequest;
import io.etcd.jetcd.api.WatchGrpc;
import io.etcd.jetcd.api.WatchRequest;
import io.etcd.jetcd.api.WatchResponse;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * Jepsen-style check of the kvstore's first promise, on real member processes: writers put
 * unique keys and increment a counter with compare-and-swap transactions through every member
 * while the Raft leader is SIGKILLed again and again (and restarted once writes have moved on
 * without it, far enough for it to need a snapshot), then a follower, and at last every member
 * at once. A client watches the whole time, resuming on another member when its own dies;
 * another keeps a lease alive, and a second lease is left to expire. Afterwards:
 *
 * <ul>
 *   <li>every acknowledged put is there, at the revision its response named; nothing is there
 *       that nobody wrote, and a write whose outcome the client never learned is there whole or
 *       not at all;
 *   <li>each writer's acknowledged revisions grow (a later write never gets an earlier revision);
 *   <li>the counter went 1, 2, 3, ... with no acknowledged increment lost or applied twice;
 *   <li>every member replays the same history from revision 1 through a watch: one event per
 *       revision, no gap, the same on all three;
 *   <li>the watch that lived through it all saw exactly that history: no gap, no repeat, in order;
 *   <li>the kept lease and its key are there; the other lease and its key are gone;
 *   <li>no linearizable read of the counter, sent through any member during the chaos, returned
 *       less than an increment acknowledged before it was sent.
 * </ul>
 *
 * <p>A second test runs the same clients and checks through network partitions instead of kills.
 *
 * <p>The default run kills the leader {@value #DEFAULT_ROUNDS} times; {@code mvn -Pchaos} (in
 * this module) runs the long variant.
 */
class ChaosTest {
  private static final int DEFAULT_ROUNDS = 3;
  private static final int ROUNDS = Integer.getInteger("capstan.chaos.rounds", DEFAULT_ROUNDS);
  private static final int WRITERS = Integer.getInteger("capstan.chaos.writers", 4);
  /** Acknowledged writes before each kill, and again while the killed member is down. */
  private static final int WRITES_PER_PHASE = Integer.getInteger("capstan.chaos.writes-per-phase", 300);
  /** Cuts of the network in the partition test, one kind after the other ({@link Cut}). */
  private static final int PARTITION_ROUNDS = Integer.getInteger("capstan.chaos.partition-rounds", 5);
  /** Leadership transfers of the transfer test (etcd's MoveLeader, as an operator moves a leader off a host). */
  private static final int TRANSFER_ROUNDS = Integer.getInteger("capstan.chaos.transfer-rounds", 10);
  private static final Duration RPC_DEADLINE = Duration.ofSeconds(5);
  private static final String PREFIX = "chaos/";
  private static final ByteString COUNTER = ByteString.copyFromUtf8(PREFIX + "counter");

  @Test
  void killingTheLeaderUnderConcurrentWritesLosesNoAcknowledgedWrite() throws Exception {
    // snapshots every 200 entries, the log purged behind them: a member down for a phase
    // comes back behind the leader's log and catches up by snapshot installation
    try (DistCluster c = new DistCluster(3).withArgs("--snapshot-count", "200").start()) {
      chaos(c, ChaosTest::kills);
    }
  }

  /**
   * The same clients and checks while the network between the members is cut ({@link Links}:
   * bytes held, as a firewall that drops packets holds them) in the ways that trouble Raft: the
   * leader cut off from everyone; the leader deaf (it sends, hears nothing: it must step down
   * for anyone to lead); the leader mute (it hears, nobody hears it); the leader and one follower
   * cut from each other while both still reach the third; a follower cut off. Writes must go on
   * through the members that can form a majority while each cut lasts, no read may be stale,
   * and after the cut is mended every member catches up.
   */
  @Test
  void partitionsUnderConcurrentWritesLoseNoAcknowledgedWriteAndServeNoStaleRead() throws Exception {
    try (DistCluster c = new DistCluster(3).withLinks().withArgs("--snapshot-count", "200").start()) {
      chaos(c, ChaosTest::partitions);
    }
  }

  /**
   * The same clients and checks while the leadership is handed from member to member (etcd's
   * MoveLeader, {@code etcdctl move-leader}), {@link #TRANSFER_ROUNDS} times, each after a third
   * of a phase of writes. A leader that hands over steps down with writes appended and not yet
   * applied, which Ratis answers with NotLeaderException though the next leader commits them:
   * every write must still be applied once (each key at version 1) and answered at most once.
   */
  @Test
  void leaderTransfersUnderConcurrentWritesLoseNoAcknowledgedWriteAndApplyNoneTwice() throws Exception {
    try (DistCluster c = new DistCluster(3).withArgs("--snapshot-count", "200").start()) {
      chaos(c, ChaosTest::transfers);
    }
  }

  private static void transfers(DistCluster c, MemberChannels channels, AtomicLong acked, Leases leases) {
    for (int round = 0; round < TRANSFER_ROUNDS; round++) {
      awaitAcks(acked, acked.get() + Math.max(1, WRITES_PER_PHASE / 3), "writes before transfer " + round);
      int leader = channels.leaderIndex();
      if (round == 0) {
        leases.grantDropped(); // so that it expires under a later leader
      }
      // as an operator would, a transfer that failed (etcd's "leader transfer took too long")
      // is asked for again, up to three times, from whoever leads then
      for (int attempt = 1; ; attempt++) {
        int target = (leader + 1 + round % 2) % c.size();
        long targetId = io.etcd.jetcd.api.MaintenanceGrpc.newBlockingStub(channels.get(target))
            .withDeadlineAfter(5, TimeUnit.SECONDS).status(io.etcd.jetcd.api.StatusRequest.getDefaultInstance())
            .getHeader().getMemberId();
        long start = System.nanoTime();
        try {
          io.etcd.jetcd.api.MaintenanceGrpc.newBlockingStub(channels.get(leader)).withDeadlineAfter(15, TimeUnit.SECONDS)
              .moveLeader(io.etcd.jetcd.api.MoveLeaderRequest.newBuilder().setTargetID(targetId).build());
        } catch (StatusRuntimeException e) {
          System.out.printf("transfer round %d: %s could not hand the leadership to %s (attempt %d, %d ms): %s%n", round,
              c.name(leader), c.name(target), attempt, (System.nanoTime() - start) / 1_000_000, e.getStatus());
          assertThat(attempt).as("attempts at transfer " + round).isLessThan(3);
          leader = channels.leaderIndex();
          continue;
        }
        int now = channels.leaderIndexOtherThan(leader);
        System.out.printf("transfer round %d: %s handed the leadership to %s (%s leads) in %d ms%n", round, c.name(leader),
            c.name(target), c.name(now), (System.nanoTime() - start) / 1_000_000);
        break;
      }
    }
    awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes after the transfers");
    StringBuilder resent = new StringBuilder();
    for (int i = 0; i < c.size(); i++) {
      resent.append(' ').append(c.name(i)).append('=').append((long) c.metric(i, "raft_resent_calls"));
    }
    System.out.println("chaos: entries a stepped-down leader sent again as the same call, per member:" + resent);
  }

  /** The cuts of the partition test, in the order it makes them. */
  enum Cut {
    LEADER_ISOLATED("leader isolated", true),
    LEADER_DEAF("leader deaf", true),
    LEADER_MUTE("leader mute", true),
    LEADER_AND_FOLLOWER_SPLIT("leader and a follower split", false),
    FOLLOWER_ISOLATED("follower isolated", false);

    final String description;
    /** A leader other than the one at the cut must take over while it lasts. */
    final boolean deposesLeader;

    Cut(String description, boolean deposesLeader) {
      this.description = description;
      this.deposesLeader = deposesLeader;
    }

    /** Makes this cut, with {@code leader} the current leader and {@code follower} another member. */
    void apply(Links links, int members, int leader, int follower) {
      switch (this) {
        case LEADER_ISOLATED -> links.isolate(leader);
        case FOLLOWER_ISOLATED -> links.isolate(follower);
        case LEADER_AND_FOLLOWER_SPLIT -> {
          links.cut(leader, follower);
          links.cut(follower, leader);
        }
        case LEADER_DEAF, LEADER_MUTE -> {
          for (int j = 0; j < members; j++) {
            if (j != leader) {
              if (this == LEADER_DEAF) {
                links.cut(j, leader);
              } else {
                links.cut(leader, j);
              }
            }
          }
        }
      }
    }
  }

  private static void partitions(DistCluster c, MemberChannels channels, AtomicLong acked, Leases leases) {
    Links links = c.links();
    for (int round = 0; round < PARTITION_ROUNDS; round++) {
      awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes before cut " + round);
      int leader = channels.leaderIndex();
      if (round == 0) {
        leases.grantDropped(); // so that it expires during the cuts
      }
      Cut cut = Cut.values()[round % Cut.values().length];
      cut.apply(links, c.size(), leader, (leader + 1) % c.size());
      long atCut = acked.get();
      long cutAt = System.nanoTime();
      try {
        // each writer may have had one write in flight that committed before the cut
        awaitAcks(acked, atCut + WRITERS + 1, "writes after the cut: " + cut.description + " (leader " + c.name(leader) + ")");
        long resumedMs = (System.nanoTime() - cutAt) / 1_000_000;
        awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes during the cut: " + cut.description);
        System.out.printf("partition round %d: %s (leader was %s), writes went on after %d ms; leader now %s%n",
            round, cut.description, c.name(leader), resumedMs, c.name(channels.leaderIndexOtherThan(cut.deposesLeader ? leader : -1)));
      } finally {
        links.heal();
      }
      awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes after mending the cut: " + cut.description);
    }
    StringBuilder snapshots = new StringBuilder();
    for (int i = 0; i < c.size(); i++) {
      snapshots.append(' ').append(c.name(i)).append('=').append((long) c.metric(i, "raft_snapshots_installed"))
          .append('/').append((long) c.metric(i, "raft_apply_repairs"))
          .append('/').append((long) c.metric(i, "raft_snapshot_reload_retries"));
    }
    System.out.println("chaos: snapshots installed from the leader / lost reloads repaired / loads tried again,"
        + " per member:" + snapshots);
    assertThat(links.unidentified()).as("connections between members whose member was not found").isZero();
  }

  /** What the test does to the cluster while the clients run (the kills, or the partitions). */
  interface Nemesis {
    void run(DistCluster c, MemberChannels channels, AtomicLong acked, Leases leases) throws Exception;
  }

  /** Runs the clients, {@code nemesis} and the checks; on a failure, keeps the members' logs ({@link #keepLogs}). */
  private static void chaos(DistCluster c, Nemesis nemesis) throws Exception {
    try {
      runChaos(c, nemesis);
    } catch (Throwable t) {
      t.addSuppressed(new AssertionError("member logs, thread dumps and metrics kept in " + keepLogs(c, t)));
      throw t;
    }
    if (Boolean.getBoolean("capstan.chaos.keep-logs")) {
      // -Dcapstan.chaos.keep-logs=true keeps them after a green run too, to study its timings
      AssertionError problems = new AssertionError("keeping the logs of a green run");
      Path dir = keepLogs(c, problems);
      System.out.println("chaos: member logs, thread dumps and metrics kept in " + dir);
      for (Throwable p : problems.getSuppressed()) {
        System.out.println("chaos: " + p);
      }
    }
  }

  private static void runChaos(DistCluster c, Nemesis nemesis) throws Exception {
    try (MemberChannels channels = new MemberChannels(c)) {
      AtomicLong acked = new AtomicLong();
      AtomicLong counterFloor = new AtomicLong();
      LiveWatcher watcher = new LiveWatcher(channels.all);
      watcher.open();
      Leases leases = new Leases(channels.all);
      leases.start();
      List<Writer> writers = new ArrayList<>();
      List<Thread> threads = new ArrayList<>();
      for (int w = 0; w < WRITERS; w++) {
        Writer writer = new Writer(w, channels.all, acked, counterFloor);
        writers.add(writer);
        Thread t = new Thread(writer, "chaos-writer-" + w);
        threads.add(t);
        t.start();
      }
      Reader reader = new Reader(channels.all, counterFloor);
      Thread readerThread = new Thread(reader, "chaos-reader");
      threads.add(readerThread);
      readerThread.start();
      try {
        nemesis.run(c, channels, acked, leases);
      } finally {
        leases.close();
        reader.stop = true;
        for (Writer w : writers) {
          w.stop = true;
        }
        for (Thread t : threads) {
          t.join(TimeUnit.SECONDS.toMillis(30));
        }
      }
      for (Thread t : threads) {
        assertThat(t.isAlive()).as(t.getName() + " stopped").isFalse();
      }
      // fresh channels: the old ones to restarted members may still be backing off
      try (MemberChannels fresh = new MemberChannels(c)) {
        check(c, fresh, writers, reader, watcher, leases);
      } finally {
        watcher.close();
      }
    }
  }

  /**
   * SIGKILL of the leader, {@link #ROUNDS} times (restarted after a phase of writes without it),
   * then of a follower, then of every member at once.
   */
  private static void kills(DistCluster c, MemberChannels channels, AtomicLong acked, Leases leases) throws Exception {
    for (int round = 0; round < ROUNDS; round++) {
      awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes before kill " + round);
      int leader = channels.leaderIndex();
      if (round == 0) {
        leases.grantDropped(); // so that it expires under the next leader
      }
      long atKill = acked.get();
      long killedAt = System.nanoTime();
      c.kill(leader);
      // each writer may have had one write in flight that committed before the kill
      awaitAcks(acked, atKill + WRITERS + 1, "writes after killing leader " + c.name(leader));
      System.out.printf("chaos round %d: killed leader %s, writes resumed after %d ms%n",
          round, c.name(leader), (System.nanoTime() - killedAt) / 1_000_000);
      awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes while " + c.name(leader) + " is down");
      c.startMember(leader);
      c.awaitReady(leader, Duration.ofSeconds(60));
      channels.all.get(leader).resetConnectBackoff();
    }
    StringBuilder fallbacks = new StringBuilder();
    for (int i = 0; i < c.size(); i++) {
      fallbacks.append(' ').append(c.name(i)).append('=').append((long) c.metric(i, "raft_forward_fallbacks"))
          .append('/').append((long) c.metric(i, "raft_client_proposals"));
    }
    System.out.println("chaos: entries sent through Ratis' client since each member's start (refused forwards/all):" + fallbacks);
    // a follower: writers through it move to the others, and it catches up by snapshot
    awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes before killing a follower");
    int follower = (channels.leaderIndex() + 1) % c.size();
    c.kill(follower);
    awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes while follower " + c.name(follower) + " is down");
    c.startMember(follower);
    c.awaitReady(follower, Duration.ofSeconds(60));
    channels.all.get(follower).resetConnectBackoff();
    System.out.printf("chaos: killed and restarted follower %s%n", c.name(follower));
    // last, every member at once, under the same writes
    awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes before killing every member");
    for (int i = 0; i < c.size(); i++) {
      c.kill(i);
    }
    for (int i = 0; i < c.size(); i++) {
      c.startMember(i);
    }
    for (int i = 0; i < c.size(); i++) {
      c.awaitReady(i, Duration.ofSeconds(60));
      channels.all.get(i).resetConnectBackoff();
    }
    awaitAcks(acked, acked.get() + WRITES_PER_PHASE, "writes after restarting every member");
  }

  /** Keeps the members' logs, thread dumps and metrics in target/chaos-logs/ ({@link DistCluster#keepLogs}). */
  private static Path keepLogs(DistCluster c, Throwable t) {
    return c.keepLogs(Paths.get("target", "chaos-logs").toAbsolutePath(), t);
  }

  private static void check(DistCluster c, MemberChannels channels, List<Writer> writers, Reader reader, LiveWatcher watcher,
      Leases leases) throws Exception {
    for (int i = 0; i < c.size(); i++) {
      assertThat(c.isAlive(i)).as(c.name(i) + " runs after the chaos (its last words: "
          + c.logLines(i, "exits: ") + ")").isTrue();
    }
    await("the lease left alone expires").atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100))
        .ignoreExceptions().until(() -> leases.ttl(channels.all.get(0), leases.dropped) == -1);
    RangeResponse all = null;
    StatusRuntimeException last = null;
    for (long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30); all == null && System.nanoTime() < deadline; ) {
      try {
        all = kv(channels.all.get(0)).range(RangeRequest.newBuilder().setKey(ByteString.copyFromUtf8(PREFIX))
            .setRangeEnd(prefixEnd(PREFIX)).build());
      } catch (StatusRuntimeException e) {
        last = e;
        LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
      }
    }
    if (all == null) {
      throw new AssertionError("no linearizable read from " + c.name(0) + " in 30 s after the chaos", last);
    }
    long finalRevision = all.getHeader().getRevision();
    Map<String, KeyValue> stored = new HashMap<>();
    for (KeyValue kv : all.getKvsList()) {
      stored.put(kv.getKey().toStringUtf8(), kv);
    }

    long ackedPuts = 0;
    long ambiguousPuts = 0;
    List<Long> ackedIncrements = new ArrayList<>();
    long ambiguousIncrements = 0;
    Set<String> written = new HashSet<>();
    written.add(COUNTER.toStringUtf8());
    written.add(Leases.KEPT);
    written.add(Leases.DROPPED);
    assertThat(leases.problems()).as("the kept lease's keep-alives").isEmpty();
    assertThat(stored.get(Leases.KEPT)).as("the key of the lease kept alive").isNotNull()
        .satisfies(kv -> assertThat(kv.getLease()).isEqualTo(leases.kept));
    assertThat(leases.ttl(channels.all.get(0), leases.kept)).as("the kept lease's TTL").isPositive();
    assertThat(stored).as("keys after the expiry of their lease").doesNotContainKey(Leases.DROPPED);
    for (Writer w : writers) {
      for (Writer.Ack a : w.puts) {
        KeyValue kv = stored.get(a.key());
        assertThat(kv).as("acknowledged put of " + a.key() + " at revision " + a.revision()).isNotNull();
        assertThat(kv.getValue().toStringUtf8()).as(a.key()).isEqualTo(Writer.valueOf(a.key()));
        assertThat(kv.getModRevision()).as("revision of " + a.key()).isEqualTo(a.revision());
        assertThat(kv.getVersion()).as(a.key() + " applied once").isEqualTo(1);
        written.add(a.key());
      }
      for (String key : w.ambiguousKeys) {
        KeyValue kv = stored.get(key);
        if (kv != null) {
          assertThat(kv.getValue().toStringUtf8()).as(key + ", written with an unknown outcome").isEqualTo(Writer.valueOf(key));
          assertThat(kv.getVersion()).as(key + ", written with an unknown outcome, applied at most once").isEqualTo(1);
        }
        written.add(key);
      }
      for (int i = 1; i < w.revisions.size(); i++) {
        assertThat(w.revisions.get(i)).as("writer " + w.id + "'s acknowledged revision #" + i)
            .isGreaterThan(w.revisions.get(i - 1));
      }
      ackedPuts += w.puts.size();
      ambiguousPuts += w.ambiguousKeys.size();
      ackedIncrements.addAll(w.increments);
      ambiguousIncrements += w.ambiguousIncrements;
    }
    assertThat(written).as("keys written").containsAll(stored.keySet());

    long counter = stored.containsKey(COUNTER.toStringUtf8())
        ? Long.parseLong(stored.get(COUNTER.toStringUtf8()).getValue().toStringUtf8()) : 0;
    assertThat(new HashSet<>(ackedIncrements)).as("values of acknowledged increments are distinct").hasSize(ackedIncrements.size());
    assertThat(counter).as("counter").isBetween((long) ackedIncrements.size(), ackedIncrements.size() + ambiguousIncrements);
    for (long v : ackedIncrements) {
      assertThat(v).isLessThanOrEqualTo(counter);
    }
    assertThat(reader.stale).as("linearizable reads older than an acknowledged increment").isEmpty();
    assertThat(reader.highest).as("the highest counter a read returned").isLessThanOrEqualTo(counter);
    System.out.println("chaos: linearizable reads of the counter answered/sent by member:" + reader.summary());
    synchronized (Writer.FAILURES) {
      System.out.println("chaos: failed writes " + Writer.FAILURES);
    }
    // what to read next to a write that ran into its deadline (printed, not checked)
    for (int i = 0; i < c.size(); i++) {
      for (String line : c.logLines(i, "through Ratis' client")) {
        System.out.println("chaos: " + c.name(i) + ": " + line);
      }
    }
    System.out.printf("chaos: %d acknowledged puts, %d with unknown outcome; %d acknowledged increments, %d unknown;"
        + " counter %d; revision %d%n", ackedPuts, ambiguousPuts, ackedIncrements.size(), ambiguousIncrements, counter, finalRevision);

    // the same history on every member, one event per revision from the first write on
    List<Event> reference = null;
    for (int i = 0; i < c.size(); i++) {
      List<Event> history;
      try {
        history = history(c, i, channels.all.get(i), finalRevision);
      } catch (AssertionError e) {
        throw new AssertionError(c.name(i) + ": " + e.getMessage(), e);
      }
      for (int j = 0; j < history.size(); j++) {
        assertThat(history.get(j).getKv().getModRevision()).as(c.name(i) + "'s event #" + j).isEqualTo(j + 2L);
      }
      if (reference == null) {
        reference = history;
        long next = 1;
        for (Event e : history) {
          if (e.getKv().getKey().equals(COUNTER)) {
            assertThat(e.getKv().getValue().toStringUtf8()).as("counter at revision " + e.getKv().getModRevision())
                .isEqualTo(Long.toString(next++));
          }
        }
        assertThat(next - 1).as("increments in the history").isEqualTo(counter);
      } else {
        assertThat(history).as(c.name(i) + "'s history against " + c.name(0) + "'s").isEqualTo(reference);
      }
    }
    assertThat(reference).as("history").hasSize((int) (finalRevision - 1));

    // the watch that lived through the chaos, resumed on another member whenever its own died
    await("the live watch reaches revision " + finalRevision).atMost(Duration.ofSeconds(60))
        .pollInterval(Duration.ofMillis(50)).until(() -> watcher.next() > finalRevision);
    assertThat(watcher.problems()).as("the live watch's gaps, repeats and refusals").isEmpty();
    assertThat(watcher.events(finalRevision)).as("the live watch's events against the history").isEqualTo(reference);
    System.out.printf("chaos: the live watch saw %d events over %d streams%n", reference.size(), watcher.streams());
  }

  /**
   * Every event with a key under the prefix, from revision 1 through {@code last}, by a watch on
   * member {@code member}. If the watch does not get there, the failure says where every member's
   * Raft and store stand ({@link #raftStates}), read from their metrics pages (a member whose gRPC
   * port hangs still answers those).
   */
  private static List<Event> history(DistCluster c, int member, ManagedChannel ch, long last) throws Exception {
    List<Event> events = new ArrayList<>();
    CompletableFuture<List<Event>> done = new CompletableFuture<>();
    StreamObserver<WatchRequest> requests = WatchGrpc.newStub(ch).watch(observer(r -> {
      if (r.getCanceled()) {
        done.completeExceptionally(new AssertionError("watch canceled: " + r));
        return;
      }
      synchronized (events) {
        events.addAll(r.getEventsList());
      }
      if (!events.isEmpty() && events.get(events.size() - 1).getKv().getModRevision() >= last) {
        done.complete(events);
      }
    }, done::completeExceptionally));
    try {
      requests.onNext(WatchRequest.newBuilder().setCreateRequest(WatchCreateRequest.newBuilder()
          .setKey(ByteString.copyFromUtf8(PREFIX)).setRangeEnd(prefixEnd(PREFIX)).setStartRevision(1)).build());
      done.get(60, TimeUnit.SECONDS);
      synchronized (events) { // more may still arrive: a lease expiring after the final read
        return events.stream().filter(e -> e.getKv().getModRevision() <= last).toList();
      }
    } catch (TimeoutException e) {
      synchronized (events) {
        throw new AssertionError("watch from revision 1 stopped at " + events.size() + " events, the last at revision "
            + (events.isEmpty() ? 0 : events.get(events.size() - 1).getKv().getModRevision()) + ", waiting for " + last
            + "; " + raftStates(c) + "; busy threads of " + c.name(member) + ": " + c.busyThreads(member, 3));
      }
    } finally {
      requests.onCompleted();
    }
  }

  /**
   * Each member's term, role, log (first and last index), commit, applied and acknowledged index,
   * store revision and snapshots installed, from its metrics; for a member that has not applied
   * what it committed, also what its apply thread is doing.
   */
  private static String raftStates(DistCluster c) {
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < c.size(); i++) {
      out.append(i == 0 ? "" : "; ").append(c.name(i)).append(':');
      try {
        long commit = (long) c.metric(i, "raft_commit_index");
        long applied = (long) c.metric(i, "raft_applied_index");
        out.append(" term ").append((long) c.metric(i, "raft_term"))
            .append(c.metric(i, "raft_is_leader") > 0 ? " leader" : c.metric(i, "raft_has_leader") > 0 ? " follower" : " no leader")
            .append(", log ").append((long) c.metric(i, "raft_log_start_index"))
            .append("..").append((long) c.metric(i, "raft_log_last_index"))
            .append(", commit ").append(commit)
            .append(", applied ").append(applied)
            .append(", acknowledged ").append((long) c.metric(i, "raft_acknowledged_index"))
            .append(", revision ").append((long) c.metric(i, "kvstore_revision"))
            .append(", snapshots installed ").append((long) c.metric(i, "raft_snapshots_installed"))
            .append(", apply repairs ").append((long) c.metric(i, "raft_apply_repairs"))
            .append(", silent followers ").append((long) c.metric(i, "raft_silent_followers"));
        if (applied < commit) {
          out.append(", apply: ").append(c.threadTops(i, "StateMachineUpdater", 4));
        }
      } catch (RuntimeException | AssertionError e) {
        out.append(" metrics unreadable (").append(e).append(')');
      }
    }
    return out.toString();
  }

  /** A response observer: {@code next} for each response, {@code ended} on an error or the end of the stream. */
  static <T> StreamObserver<T> observer(Consumer<T> next,
      Consumer<Throwable> ended) {
    return new StreamObserver<>() {
      @Override
      public void onNext(T response) {
        next.accept(response);
      }

      @Override
      public void onError(Throwable t) {
        ended.accept(t);
      }

      @Override
      public void onCompleted() {
        ended.accept(new IllegalStateException("the server ended the stream"));
      }
    };
  }

  private static void awaitAcks(AtomicLong acked, long atLeast, String what) {
    await(what + " (" + atLeast + " acknowledged)").atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(10))
        .until(() -> acked.get() >= atLeast);
  }

  private static KVGrpc.KVBlockingStub kv(ManagedChannel ch) {
    return KVGrpc.newBlockingStub(ch).withDeadlineAfter(RPC_DEADLINE.toMillis(), TimeUnit.MILLISECONDS);
  }

  private static ByteString prefixEnd(String prefix) {
    byte[] b = prefix.getBytes(StandardCharsets.UTF_8);
    b[b.length - 1]++;
    return ByteString.copyFrom(b);
  }

  /**
   * One client: puts of unique keys and, every fourth write, a compare-and-swap increment of the
   * counter, each waiting for its answer; after an error it moves to the next member.
   */
  static final class Writer implements Runnable {
    record Ack(String key, long revision) {}

    /** Failed writes of all writers by kind, status and whether they took a second or more (printed, not checked). */
    static final Map<String, Integer> FAILURES = new TreeMap<>();

    final int id;
    final List<ManagedChannel> channels;
    final AtomicLong acked;
    final List<Ack> puts = new ArrayList<>();
    final List<String> ambiguousKeys = new ArrayList<>();
    final List<Long> increments = new ArrayList<>();
    final List<Long> revisions = new ArrayList<>();
    long ambiguousIncrements;
    volatile boolean stop;
    private int at;

    /** The highest counter value an acknowledged increment of any writer set. */
    final AtomicLong counterFloor;

    Writer(int id, List<ManagedChannel> channels, AtomicLong acked, AtomicLong counterFloor) {
      this.id = id;
      this.channels = channels;
      this.acked = acked;
      this.counterFloor = counterFloor;
      this.at = id % channels.size();
    }

    static String valueOf(String key) {
      return "value-of-" + key;
    }

    @Override
    public void run() {
      for (long seq = 0; !stop; seq++) {
        long start = System.nanoTime();
        try {
          if (seq % 4 == 3) {
            increment();
          } else {
            put(String.format("%sw%d/%08d", PREFIX, id, seq));
          }
        } catch (StatusRuntimeException e) {
          long ms = (System.nanoTime() - start) / 1_000_000;
          // a write that ran into its deadline also names the member it was sent to (e0, e1, e2)
          String kind = (seq % 4 == 3 ? "increment " : "put ") + e.getStatus().getCode() + (ms >= 1000 ? " after >= 1 s" : "")
              + (e.getStatus().getCode() == Status.Code.DEADLINE_EXCEEDED ? " at e" + at : "");
          synchronized (FAILURES) {
            FAILURES.merge(kind, 1, Integer::sum);
          }
          // the member is down, or lost its leader: as a client would, try the next one soon
          at = (at + 1) % channels.size();
          LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20));
        }
      }
    }

    private void put(String key) {
      try {
        long rev = kv(channels.get(at)).put(PutRequest.newBuilder().setKey(ByteString.copyFromUtf8(key))
            .setValue(ByteString.copyFromUtf8(valueOf(key))).build()).getHeader().getRevision();
        puts.add(new Ack(key, rev));
        acknowledged(rev);
      } catch (StatusRuntimeException e) {
        ambiguousKeys.add(key);
        throw e;
      }
    }

    private void increment() {
      RangeResponse r = kv(channels.get(at)).range(RangeRequest.newBuilder().setKey(COUNTER).build());
      long value = r.getKvsCount() == 0 ? 0 : Long.parseLong(r.getKvs(0).getValue().toStringUtf8());
      long mod = r.getKvsCount() == 0 ? 0 : r.getKvs(0).getModRevision();
      TxnResponse t;
      try {
        t = kv(channels.get(at)).txn(TxnRequest.newBuilder()
            .addCompare(Compare.newBuilder().setKey(COUNTER).setTarget(Compare.CompareTarget.MOD)
                .setResult(Compare.CompareResult.EQUAL).setModRevision(mod))
            .addSuccess(RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(COUNTER)
                .setValue(ByteString.copyFromUtf8(Long.toString(value + 1)))))
            .build());
      } catch (StatusRuntimeException e) {
        ambiguousIncrements++;
        throw e;
      }
      if (t.getSucceeded()) {
        increments.add(value + 1);
        counterFloor.accumulateAndGet(value + 1, Math::max);
        acknowledged(t.getHeader().getRevision());
      }
    }

    private void acknowledged(long revision) {
      revisions.add(revision);
      acked.incrementAndGet();
    }
  }

  /**
   * A client that reads the counter, linearizably, through each member in turn. Linearizability
   * allows no read to return less than an increment acknowledged before the read was sent, so
   * every answer is held against the highest acknowledged increment at its sending; a member
   * that cannot confirm it still leads (killed, cut off, deposed) must fail the read instead.
   */
  static final class Reader implements Runnable {
    final List<ManagedChannel> channels;
    final AtomicLong counterFloor;
    final List<String> stale = Collections.synchronizedList(new ArrayList<>());
    final long[] answered;
    final long[] failed;
    volatile long highest;
    volatile boolean stop;

    Reader(List<ManagedChannel> channels, AtomicLong counterFloor) {
      this.channels = channels;
      this.counterFloor = counterFloor;
      this.answered = new long[channels.size()];
      this.failed = new long[channels.size()];
    }

    @Override
    public void run() {
      for (int n = 0; !stop; n++) {
        int at = n % channels.size();
        long floor = counterFloor.get();
        try {
          RangeResponse r = KVGrpc.newBlockingStub(channels.get(at)).withDeadlineAfter(2, TimeUnit.SECONDS)
              .range(RangeRequest.newBuilder().setKey(COUNTER).build());
          long value = r.getKvsCount() == 0 ? 0 : Long.parseLong(r.getKvs(0).getValue().toStringUtf8());
          answered[at]++;
          highest = Math.max(highest, value);
          if (value < floor) {
            stale.add("member " + at + " answered counter " + value + " at revision " + r.getHeader().getRevision()
                + " after an increment to " + floor + " was acknowledged");
          }
        } catch (StatusRuntimeException e) {
          failed[at]++;
        }
        LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(2));
      }
    }

    String summary() {
      StringBuilder b = new StringBuilder();
      for (int i = 0; i < channels.size(); i++) {
        b.append(" e").append(i).append('=').append(answered[i]).append('/').append(answered[i] + failed[i]);
      }
      return b.toString();
    }
  }

  /**
   * A client's watch of the whole prefix from the first write on, kept through the chaos as etcd's
   * clients keep theirs: when its stream fails (its member was killed), it opens a new one on the
   * next member from the revision after the last it saw. Every revision has exactly one event
   * under the prefix here, so any event other than the next revision is a gap or a repeat.
   */
  private static final class LiveWatcher implements AutoCloseable {
    private final List<ManagedChannel> channels;
    private final List<Event> events = new ArrayList<>();
    private final List<String> problems = new ArrayList<>();
    private final ScheduledExecutorService retry =
        Executors.newSingleThreadScheduledExecutor();
    /** Revision 1 is the empty store's: the first event is the first write's, at 2. */
    private long next = 2;
    private int at;
    private int streams;
    private volatile boolean closed;
    private StreamObserver<WatchRequest> requests;

    LiveWatcher(List<ManagedChannel> channels) {
      this.channels = channels;
    }

    synchronized void open() {
      if (closed) {
        return;
      }
      streams++;
      requests = WatchGrpc.newStub(channels.get(at)).watch(observer(this::received, ended -> reopen()));
      requests.onNext(WatchRequest.newBuilder().setCreateRequest(WatchCreateRequest.newBuilder()
          .setKey(ByteString.copyFromUtf8(PREFIX)).setRangeEnd(prefixEnd(PREFIX)).setStartRevision(next)).build());
    }

    private synchronized void received(WatchResponse r) {
      if (r.getCanceled()) {
        problems.add("watch canceled on member " + at + " from revision " + next + ": " + r.getCancelReason()
            + " (compact revision " + r.getCompactRevision() + ")");
        return;
      }
      for (Event e : r.getEventsList()) {
        long rev = e.getKv().getModRevision();
        if (rev != next) {
          problems.add("event at revision " + rev + " where " + next + " was next (member " + at + ")");
        }
        events.add(e);
        next = Math.max(next, rev + 1);
      }
    }

    private void reopen() {
      synchronized (this) {
        at = (at + 1) % channels.size();
      }
      if (!closed) {
        retry.schedule(this::open, 100, TimeUnit.MILLISECONDS);
      }
    }

    synchronized long next() {
      return next;
    }

    synchronized int streams() {
      return streams;
    }

    synchronized List<String> problems() {
      return new ArrayList<>(problems);
    }

    synchronized List<Event> events(long upTo) {
      return events.stream().filter(e -> e.getKv().getModRevision() <= upTo).toList();
    }

    @Override
    public void close() {
      closed = true;
      retry.shutdownNow();
      synchronized (this) {
        if (requests != null) {
          requests.onCompleted();
        }
      }
    }
  }

  /**
   * Two leases through the chaos, with a key each: one kept alive by a client (every 500 ms,
   * through the next member when its own fails), which must outlive every kill (a new leader
   * gives every lease its full TTL again, as etcd's does); one left to expire right after a leader
   * kill, whose key must go (expiry is decided by the leader and replicated as a revoke).
   */
  static final class Leases implements AutoCloseable {
    static final String KEPT = PREFIX + "lease/kept";
    static final String DROPPED = PREFIX + "lease/dropped";
    private static final long KEPT_TTL = 10;
    private static final long DROPPED_TTL = 3;

    private final List<ManagedChannel> channels;
    private final List<String> problems = Collections.synchronizedList(new ArrayList<>());
    private final Thread keeper = new Thread(this::keepAlive, "chaos-lease-keeper");
    private volatile boolean stop;
    private int at;
    long kept;
    long dropped;

    Leases(List<ManagedChannel> channels) {
      this.channels = channels;
    }

    void start() {
      kept = grantWithKey(KEPT, KEPT_TTL);
      keeper.start();
    }

    void grantDropped() {
      dropped = grantWithKey(DROPPED, DROPPED_TTL);
    }

    private long grantWithKey(String key, long ttl) {
      return await("lease and key " + key).atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100))
          .ignoreExceptions().until(() -> {
            ManagedChannel ch = channels.get(0);
            long id = LeaseGrpc.newBlockingStub(ch).withDeadlineAfter(5, TimeUnit.SECONDS)
                .leaseGrant(LeaseGrantRequest.newBuilder().setTTL(ttl).build()).getID();
            kv(ch).put(PutRequest.newBuilder().setKey(ByteString.copyFromUtf8(key)).setValue(ByteString.copyFromUtf8(key))
                .setLease(id).build());
            return id;
          }, id -> id != 0);
    }

    private void keepAlive() {
      while (!stop) {
        CompletableFuture<LeaseKeepAliveResponse> reply = new CompletableFuture<>();
        StreamObserver<LeaseKeepAliveRequest> requests = LeaseGrpc.newStub(channels.get(at))
            .withDeadlineAfter(2, TimeUnit.SECONDS).leaseKeepAlive(observer(reply::complete, reply::completeExceptionally));
        try {
          requests.onNext(LeaseKeepAliveRequest.newBuilder().setID(kept).build());
          LeaseKeepAliveResponse r = reply.get(2, TimeUnit.SECONDS);
          if (r.getTTL() <= 0) {
            problems.add("the kept lease was gone at a keep-alive through member " + at + ": " + r);
          }
          requests.onCompleted();
          LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(500));
        } catch (Exception e) {
          requests.onError(e); // cancels the stream
          at = (at + 1) % channels.size();
        }
      }
    }

    /** The lease's remaining TTL in seconds, -1 if it does not exist (a linearizable read). */
    long ttl(ManagedChannel ch, long id) {
      return LeaseGrpc.newBlockingStub(ch).withDeadlineAfter(5, TimeUnit.SECONDS)
          .leaseTimeToLive(LeaseTimeToLiveRequest.newBuilder().setID(id).build()).getTTL();
    }

    List<String> problems() {
      return new ArrayList<>(problems);
    }

    @Override
    public void close() throws InterruptedException {
      stop = true;
      keeper.join(TimeUnit.SECONDS.toMillis(10));
    }
  }
}
