package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.mvcc.ClusterMembers;
import io.capstan.kvstore.mvcc.KvException;
import io.capstan.kvstore.mvcc.MvccStore;
import io.capstan.kvstore.mvcc.RequestApplier;
import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.PutRequest;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;

/**
 * Group commit: the entries the batcher hands to Raft are applied by the real state machine code
 * (the same {@link RequestApplier} every member runs), one entry at a time when the test says the
 * entry was committed.
 */
class ProposalBatcherTest {
  private final MvccStore store = new MvccStore();
  private final RequestApplier applier = new RequestApplier(store, new ClusterMembers(), new RequestApplier.LeaseObserver() {
    @Override
    public void granted(long id, long ttlSeconds) {}

    @Override
    public void revoked(long id) {}
  });

  /** Entries handed to "Raft", waiting for the test to commit them. */
  private final List<RaftCommand> entries = new ArrayList<>();
  private final List<CompletableFuture<ApplyResult>> replies = new ArrayList<>();

  private CompletableFuture<ApplyResult> replicate(RaftCommand entry) {
    CompletableFuture<ApplyResult> f = new CompletableFuture<>();
    entries.add(entry);
    replies.add(f);
    return f;
  }

  private void commit(int i) {
    replies.get(i).complete(applier.apply(entries.get(i)));
  }

  private static RaftCommand put(String key, String value) {
    return RaftCommand.newBuilder().setPut(PutRequest.newBuilder()
        .setKey(ByteString.copyFromUtf8(key)).setValue(ByteString.copyFromUtf8(value))).build();
  }

  private static RaftCommand putWithLease(String key, long lease) {
    return RaftCommand.newBuilder().setPut(PutRequest.newBuilder()
        .setKey(ByteString.copyFromUtf8(key)).setLease(lease)).build();
  }

  @Test
  void aLoneCommandIsProposedAsItselfAndCommandsQueuedBehindInFlightEntriesShareOne() throws Exception {
    ProposalBatcher batcher = new ProposalBatcher(this::replicate, 1, 1 << 20, 100);
    CompletableFuture<ApplyResult> first = batcher.propose(put("a", "1"));
    assertThat(entries).hasSize(1);
    assertThat(entries.get(0).hasPut()).as("a lone command is not wrapped").isTrue();

    // while the first entry is in flight, three commands queue (one of them will be refused)
    CompletableFuture<ApplyResult> b = batcher.propose(put("b", "2"));
    CompletableFuture<ApplyResult> bad = batcher.propose(putWithLease("c", 12345));
    CompletableFuture<ApplyResult> d = batcher.propose(put("d", "4"));
    assertThat(entries).hasSize(1);
    assertThat(batcher.queued()).isEqualTo(3);

    commit(0);
    assertThat(first.get().getPut().getHeader().getRevision()).isEqualTo(2);
    assertThat(entries).as("the queue went out as one entry when the slot freed").hasSize(2);
    assertThat(entries.get(1).getBatch().getCommandsCount()).isEqualTo(3);

    commit(1);
    // each command of the batch has its own revision and its own result; the refused one
    // took no revision and did not stop the others
    assertThat(b.get().getPut().getHeader().getRevision()).isEqualTo(3);
    assertThat(bad.get().getError().getMessage()).isEqualTo("etcdserver: requested lease not found");
    assertThat(d.get().getPut().getHeader().getRevision()).isEqualTo(4);
    assertThat(store.currentRevision()).isEqualTo(4);
    assertThat(batcher.batchSizes().getSnapshot().getMax()).isEqualTo(3);
  }

  @Test
  void batchesRespectTheByteAndCountLimitsAndTheInFlightWindow() {
    int oneCommand = put("k0", "x".repeat(100)).getSerializedSize();
    ProposalBatcher batcher = new ProposalBatcher(this::replicate, 2, oneCommand * 3, 2);
    batcher.propose(put("k0", "x".repeat(100)));
    batcher.propose(put("k1", "x".repeat(100)));
    assertThat(entries).as("two entries may be in flight").hasSize(2);
    for (int i = 2; i < 7; i++) {
      batcher.propose(put("k" + i, "x".repeat(100)));
    }
    commit(0);
    assertThat(entries.get(2).getBatch().getCommandsCount()).as("at most 2 commands").isEqualTo(2);
    commit(1);
    commit(2);
    assertThat(entries.get(3).getBatch().getCommandsCount()).isEqualTo(2);
    commit(3);
    assertThat(entries.get(4).hasPut()).as("the last one goes alone").isTrue();
    commit(4);
    assertThat(store.currentRevision()).isEqualTo(8);

    // a command bigger than the byte limit still goes, alone
    ProposalBatcher small = new ProposalBatcher(this::replicate, 1, 10, 100);
    small.propose(put("big", "y".repeat(50)));
    assertThat(entries.get(5).hasPut()).isTrue();
  }

  @Test
  void anEntryThatFailsFailsEveryCommandInItAndTheNextEntryStillGoes() {
    ProposalBatcher batcher = new ProposalBatcher(this::replicate, 1, 1 << 20, 100);
    CompletableFuture<ApplyResult> first = batcher.propose(put("a", "1"));
    CompletableFuture<ApplyResult> x = batcher.propose(put("x", "1"));
    CompletableFuture<ApplyResult> y = batcher.propose(put("y", "1"));
    replies.get(0).completeExceptionally(new KvException(Status.Code.UNAVAILABLE, "etcdserver: no leader"));
    assertThatThrownBy(first::get).isInstanceOf(ExecutionException.class).hasMessageContaining("no leader");
    assertThat(entries).hasSize(2);
    replies.get(1).completeExceptionally(new KvException(Status.Code.UNAVAILABLE, "etcdserver: request timed out"));
    assertThatThrownBy(x::get).hasMessageContaining("request timed out");
    assertThatThrownBy(y::get).hasMessageContaining("request timed out");
    CompletableFuture<ApplyResult> later = batcher.propose(put("z", "1"));
    commit(2);
    assertThat(later.join().getPut().getHeader().getRevision()).isEqualTo(2);
  }

  @Test
  void theNextEntryIsProposedOnTheStarterNotOnTheThreadThatCompletedTheLast() {
    List<CompletableFuture<ApplyResult>> entries = new ArrayList<>();
    List<Runnable> starts = new ArrayList<>();
    ProposalBatcher batcher = withStarter(entries, starts);
    CompletableFuture<ApplyResult> first = batcher.propose(RaftCommand.newBuilder().setPut(PutRequest.newBuilder()
        .setKey(ByteString.copyFromUtf8("a"))).build());
    CompletableFuture<ApplyResult> second = batcher.propose(RaftCommand.newBuilder().setPut(PutRequest.newBuilder()
        .setKey(ByteString.copyFromUtf8("b"))).build());
    assertThat(entries).hasSize(1);
    entries.get(0).complete(ApplyResult.getDefaultInstance());
    assertThat(first).isCompleted();
    assertThat(entries).as("not proposed from the completing thread").hasSize(1);
    new ArrayList<>(starts).forEach(Runnable::run);
    assertThat(entries).hasSize(2);
    entries.get(1).complete(ApplyResult.getDefaultInstance());
    assertThat(second).isCompleted();
  }

  @Test
  void anEntryNobodyWaitsBehindWakesNoStarter() {
    List<CompletableFuture<ApplyResult>> entries = new ArrayList<>();
    List<Runnable> starts = new ArrayList<>();
    ProposalBatcher batcher = withStarter(entries, starts);
    for (int i = 0; i < 3; i++) {
      CompletableFuture<ApplyResult> result = batcher.propose(put("serial/" + i, "v"));
      assertThat(entries).as("a serial client's command is proposed at once").hasSize(i + 1);
      entries.get(i).complete(ApplyResult.getDefaultInstance());
      assertThat(result).isCompleted();
      assertThat(starts).as("nothing queued behind entry " + i + ": no starter task").isEmpty();
    }
  }

  @Test
  void anEntryHoldingACommandForwardedByAnotherMemberIsNeverForwardedAgain() {
    List<CompletableFuture<ApplyResult>> entries = new ArrayList<>();
    List<Boolean> mayForward = new ArrayList<>();
    ProposalBatcher batcher = new ProposalBatcher(recording(entries, mayForward), () -> 1, () -> 0, 1 << 20, 100, Runnable::run);
    RaftCommand put = RaftCommand.newBuilder().setPut(PutRequest.newBuilder().setKey(ByteString.copyFromUtf8("a"))).build();
    batcher.propose(put);
    // queued behind the first entry: one of them came from another member
    batcher.propose(put);
    batcher.propose(put, true);
    entries.get(0).complete(ApplyResult.getDefaultInstance());
    batcher.propose(put);
    batcher.propose(put);
    entries.get(1).complete(ApplyResult.newBuilder().setBatch(io.capstan.kvstore.proto.ApplyResults.newBuilder()
        .addResults(ApplyResult.getDefaultInstance()).addResults(ApplyResult.getDefaultInstance())).build());
    assertThat(mayForward).containsExactly(true, false, true);
  }

  /** An entry proposer that records each entry's future and whether it may be forwarded. */
  /** One entry in flight; entries go to {@code entries}, following entries' starts to {@code starts}. */
  private static ProposalBatcher withStarter(List<CompletableFuture<ApplyResult>> entries, List<Runnable> starts) {
    return new ProposalBatcher(recording(entries, new ArrayList<>()), () -> 1, () -> 0, 1 << 20, 100, starts::add);
  }

  private static java.util.function.BiFunction<RaftCommand, Boolean, CompletableFuture<ApplyResult>> recording(
      List<CompletableFuture<ApplyResult>> entries, List<Boolean> mayForward) {
    return (entry, forwardable) -> {
      CompletableFuture<ApplyResult> f = new CompletableFuture<>();
      entries.add(f);
      mayForward.add(forwardable);
      return f;
    };
  }

  /**
   * An entry sent towards a leader that died may hang for seconds in Ratis' client; once this
   * member's lane changes (a new term, or it became leader) new commands go out at once instead
   * of queueing behind it, and its late completion does not free a slot of the new lane.
   */
  @Test
  void anEntryOfAnEarlierLaneHoldsUpNoCommandOfTheNextLane() throws Exception {
    List<CompletableFuture<ApplyResult>> entries = new ArrayList<>();
    long[] lane = {1};
    ProposalBatcher batcher = new ProposalBatcher(recording(entries, new ArrayList<>()), () -> 1, () -> lane[0],
        1 << 20, 100, Runnable::run);
    CompletableFuture<ApplyResult> stuck = batcher.propose(put("a", "1"));
    CompletableFuture<ApplyResult> queued = batcher.propose(put("b", "2"));
    assertThat(entries).as("the second command waits behind the first entry").hasSize(1);

    lane[0] = 2;
    batcher.wake();
    assertThat(entries).as("the queued command goes out in the new lane").hasSize(2);
    CompletableFuture<ApplyResult> third = batcher.propose(put("c", "3"));
    assertThat(entries).as("the new lane has one entry in flight").hasSize(2);

    entries.get(0).complete(ApplyResult.getDefaultInstance());
    assertThat(stuck).isDone();
    assertThat(entries).as("the old lane's entry freed no slot of the new one").hasSize(2);
    entries.get(1).complete(ApplyResult.getDefaultInstance());
    assertThat(queued).isDone();
    assertThat(entries).as("the new lane's own completion frees its slot").hasSize(3);
    entries.get(2).complete(ApplyResult.getDefaultInstance());
    assertThat(third).isDone();
  }
}
