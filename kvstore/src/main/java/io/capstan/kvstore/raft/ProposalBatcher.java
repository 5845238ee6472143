package io.capstan.kvstore.raft;

import com.codahale.metrics.ExponentiallyDecayingReservoir;
import com.codahale.metrics.Histogram;
import io.capstan.kvstore.mvcc.KvException;
import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.CommandBatch;
import io.capstan.kvstore.proto.RaftCommand;
import io.grpc.Status;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.BiFunction;
import java.util.function.Function;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;

/**
 * Group commit for proposals, as etcd's Raft loop batches the proposals of one tick: while {@code
 * maxInFlight} entries are being replicated, new commands wait, and the next entry carries all of
 * them (a {@link CommandBatch}, applied command by command, each with its own revision). A lone
 * command is proposed as itself, so a serial client pays nothing for this; under load the
 * per-entry costs of Raft (log append, fsync, one AppendEntries per follower, the reply) are
 * shared by every command of the batch.
 *
 * <p>Each command still gets its own result or its own error; a batch that fails as a whole
 * (no leader, timeout) fails every command in it, exactly as the single entries would have.
 */
final class ProposalBatcher {
  private final BiFunction<RaftCommand, Boolean, CompletableFuture<ApplyResult>> proposeEntry;
  private final java.util.concurrent.Executor starter;
  private final IntSupplier maxInFlight;
  private final int maxBatchBytes;
  private final int maxBatchCommands;

  private final Histogram batchSizes = new Histogram(new ExponentiallyDecayingReservoir());
  private final ArrayDeque<Pending> queue = new ArrayDeque<>();
  private final LongSupplier lane;
  /**
   * The lane seen at the last drain; a generation counting its changes (so that a lane seen again
   * later is a new generation); and how many entries of the current generation are in flight.
   */
  private long currentLane;
  private long generation;
  private int inFlight;

  private record Pending(RaftCommand command, int size, boolean forwarded, CompletableFuture<ApplyResult> result) {}

  /**
   * @param proposeEntry replicates one log entry and returns what applying it gave
   * @param maxInFlight entries replicated at once before commands start to queue
   * @param maxBatchBytes a batch stops growing at this size (a single larger command goes alone)
   * @param maxBatchCommands a batch holds at most this many commands
   */
  ProposalBatcher(Function<RaftCommand, CompletableFuture<ApplyResult>> proposeEntry, int maxInFlight,
      int maxBatchBytes, int maxBatchCommands) {
    this((entry, mayForward) -> proposeEntry.apply(entry), () -> maxInFlight, () -> 0, maxBatchBytes, maxBatchCommands,
        Runnable::run);
  }

  /**
   * @param proposeEntry replicates one log entry; its flag says whether the entry may be handed to
   *     the leader (false when it holds a command another member forwarded here: see {@link
   *     LeaderForward})
   * @param lane the way entries go now (in a member: the term, and whether it is the leader's).
   *     Only entries sent in the current lane count against {@code maxInFlight}: an entry a member
   *     sent towards a leader that has since died may take seconds to resolve (Ratis' client
   *     retries it, and closes its channel to a peer that refused it with a 5 s graceful
   *     shutdown), and must not hold up the entries this member proposes once it is leader
   *     itself: that stalled the whole cluster's writes for 5 s after some leader kills.
   * @param starter where the entry that follows a completed one is proposed: not the thread that
   *     completed it, which in a member is Ratis' apply thread (see {@link ReadBarriers} for the
   *     deadlock that calling into Ratis from there caused on the read path)
   */
  ProposalBatcher(BiFunction<RaftCommand, Boolean, CompletableFuture<ApplyResult>> proposeEntry,
      IntSupplier maxInFlight, LongSupplier lane,
      int maxBatchBytes, int maxBatchCommands, java.util.concurrent.Executor starter) {
    this.starter = starter;
    this.proposeEntry = proposeEntry;
    this.maxInFlight = maxInFlight;
    this.lane = lane;
    this.maxBatchBytes = maxBatchBytes;
    this.maxBatchCommands = maxBatchCommands;
  }

  CompletableFuture<ApplyResult> propose(RaftCommand command) {
    return propose(command, false);
  }

  /** @param forwarded the command came from another member, and must not be forwarded again */
  CompletableFuture<ApplyResult> propose(RaftCommand command, boolean forwarded) {
    Pending p = new Pending(command, command.getSerializedSize(), forwarded, new CompletableFuture<>());
    synchronized (this) {
      queue.add(p);
    }
    drain();
    return p.result();
  }

  /** Commands per proposed log entry (for metrics). */
  Histogram batchSizes() {
    return batchSizes;
  }

  /** Queued commands (for metrics). */
  synchronized int queued() {
    return queue.size();
  }

  /** Proposes what is queued, on the starter, if the current lane has room (also when the lane has just changed). */
  void wake() {
    try {
      starter.execute(this::drain);
    } catch (java.util.concurrent.RejectedExecutionException shutDown) {
      failQueued(shutDown);
    }
  }

  private void drain() {
    while (true) {
      List<Pending> batch;
      long sentGeneration;
      synchronized (this) {
        long now = lane.getAsLong();
        if (now != currentLane) {
          currentLane = now;
          generation++;
          inFlight = 0;
        }
        if (inFlight >= maxInFlight.getAsInt() || queue.isEmpty()) {
          return;
        }
        batch = new ArrayList<>();
        int bytes = 0;
        while (!queue.isEmpty() && batch.size() < maxBatchCommands) {
          Pending next = queue.peek();
          if (!batch.isEmpty() && bytes + next.size() > maxBatchBytes) {
            break;
          }
          batch.add(queue.poll());
          bytes += next.size();
        }
        inFlight++;
        sentGeneration = generation;
      }
      batchSizes.update(batch.size());
      send(batch, sentGeneration);
    }
  }

  private void send(List<Pending> batch, long sentGeneration) {
    CompletableFuture<ApplyResult> entry;
    boolean mayForward = batch.stream().noneMatch(Pending::forwarded);
    try {
      if (batch.size() == 1) {
        entry = proposeEntry.apply(batch.get(0).command(), mayForward);
      } else {
        CommandBatch.Builder b = CommandBatch.newBuilder();
        batch.forEach(p -> b.addCommands(p.command()));
        entry = proposeEntry.apply(RaftCommand.newBuilder().setBatch(b).build(), mayForward);
      }
    } catch (RuntimeException e) {
      entry = CompletableFuture.failedFuture(e);
    }
    entry.whenComplete((result, error) -> {
      boolean waiting;
      synchronized (this) {
        if (sentGeneration == generation) {
          inFlight--;
        }
        // a command queued after this check proposes itself: it sees the slot freed above
        waiting = !queue.isEmpty();
      }
      // Start the next entry before completing this one's callers: their callbacks run gRPC sends.
      if (waiting) {
        wake();
      }
      if (error != null) {
        batch.forEach(p -> p.result().completeExceptionally(error));
      } else if (batch.size() == 1) {
        batch.get(0).result().complete(result);
      } else {
        distribute(batch, result);
      }
    });
  }

  private void failQueued(Throwable cause) {
    List<Pending> dropped = new ArrayList<>();
    synchronized (this) {
      while (!queue.isEmpty()) {
        dropped.add(queue.poll());
      }
    }
    dropped.forEach(p -> p.result().completeExceptionally(cause));
  }

  private static void distribute(List<Pending> batch, ApplyResult result) {
    if (result.getResultCase() != ApplyResult.ResultCase.BATCH
        || result.getBatch().getResultsCount() != batch.size()) {
      KvException e = result.hasError()
          ? KvException.of(result.getError())
          : new KvException(Status.Code.INTERNAL, "etcdserver: batch of " + batch.size()
              + " commands answered with " + result.getResultCase());
      batch.forEach(p -> p.result().completeExceptionally(e));
      return;
    }
    for (int i = 0; i < batch.size(); i++) {
      batch.get(i).result().complete(result.getBatch().getResults(i));
    }
  }
}
