package io.capstan.kvstore.mvcc;

import static io.capstan.kvstore.mvcc.StateMachineHarness.bs;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.CompactionRequest;
import io.etcd.jetcd.api.Compare;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.TxnRequest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;

/**
 * Property tests: random command sequences against a reference model of MVCC written here
 * (key to value at each revision), and determinism of apply.
 */
class MvccPropertiesTest {
  private static final List<String> KEYS = List.of("a", "b", "c", "d", "e");

  /** One generated command. */
  sealed interface Op permits Put, Del, Txn, Compact {}

  record Put(String key, String value) implements Op {}

  record Del(String from, String to) implements Op {}

  /** If key's version equals v, put k1, else delete k2. */
  record Txn(String key, long version, String k1, String k2) implements Op {}

  /** Compact at a fraction of the current revision. */
  record Compact(double fraction) implements Op {}

  @Provide
  Arbitrary<List<Op>> ops() {
    Arbitrary<String> key = Arbitraries.of(KEYS);
    Arbitrary<Op> put = Combinators.combine(key, Arbitraries.strings().alpha().ofMaxLength(3)).as(Put::new);
    Arbitrary<Op> del = Combinators.combine(key, key).as((x, y) -> new Del(x.compareTo(y) <= 0 ? x : y, x.compareTo(y) <= 0 ? y : x));
    Arbitrary<Op> txn = Combinators.combine(key, Arbitraries.longs().between(0, 3), key, key).as(Txn::new);
    Arbitrary<Op> compact = Arbitraries.doubles().between(0, 1).map(Compact::new);
    return Arbitraries.frequencyOf(
        net.jqwik.api.Tuple.of(6, put), net.jqwik.api.Tuple.of(2, del),
        net.jqwik.api.Tuple.of(2, txn), net.jqwik.api.Tuple.of(1, compact)).list().ofMaxSize(60);
  }

  private static RaftCommand command(Op op, long currentRevision) {
    if (op instanceof Put p) {
      return RaftCommand.newBuilder().setPut(PutRequest.newBuilder().setKey(bs(p.key())).setValue(bs(p.value()))).build();
    }
    if (op instanceof Del d) {
      return RaftCommand.newBuilder().setDeleteRange(DeleteRangeRequest.newBuilder().setKey(bs(d.from()))
          .setRangeEnd(bs(d.to() + "\0"))).build();
    }
    if (op instanceof Txn t) {
      return RaftCommand.newBuilder().setTxn(TxnRequest.newBuilder()
          .addCompare(Compare.newBuilder().setKey(bs(t.key())).setTarget(Compare.CompareTarget.VERSION)
              .setResult(Compare.CompareResult.EQUAL).setVersion(t.version()))
          .addSuccess(RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(bs(t.k1())).setValue(bs("t"))))
          .addFailure(RequestOp.newBuilder().setRequestDeleteRange(DeleteRangeRequest.newBuilder().setKey(bs(t.k2()))))).build();
    }
    Compact c = (Compact) op;
    return RaftCommand.newBuilder().setCompaction(CompactionRequest.newBuilder()
        .setRevision(Math.max(1, (long) (c.fraction() * currentRevision)))).build();
  }

  /** The reference model: full state after every revision, plus per-key version counters. */
  static final class Model {
    final List<Map<String, String>> states = new ArrayList<>(); // index = revision
    final Map<String, Long> versions = new TreeMap<>();
    long compacted = 0;

    Model() {
      states.add(Map.of());
      states.add(Map.of()); // revision 1: empty store
    }

    long rev() {
      return states.size() - 1;
    }

    Map<String, String> current() {
      return states.get(states.size() - 1);
    }

    void apply(Op op) {
      Map<String, String> next = new TreeMap<>(current());
      boolean wrote = false; // a put always makes a new revision, even with the same value
      if (op instanceof Put p) {
        wrote = true;
        next.put(p.key(), p.value());
        versions.merge(p.key(), 1L, Long::sum);
      } else if (op instanceof Del d) {
        next.keySet().removeIf(k -> k.compareTo(d.from()) >= 0 && k.compareTo(d.to()) <= 0);
      } else if (op instanceof Txn t) {
        if (versions.getOrDefault(t.key(), 0L) == t.version()) {
          wrote = true;
          next.put(t.k1(), "t");
          versions.merge(t.k1(), 1L, Long::sum);
        } else {
          next.remove(t.k2());
        }
      } else {
        Compact c = (Compact) op;
        long r = Math.max(1, (long) (c.fraction() * rev()));
        if (r > compacted && r <= rev()) {
          compacted = r;
        }
        return;
      }
      // deleted keys restart their version at the next create
      for (String k : current().keySet()) {
        if (!next.containsKey(k)) {
          versions.remove(k);
        }
      }
      if (wrote || !next.equals(current())) {
        states.add(next);
      }
    }
  }

  @Property(tries = 150)
  void storeMatchesModelAtEveryRetainedRevision(@ForAll("ops") List<Op> ops) {
    StateMachineHarness sm = new StateMachineHarness();
    Model model = new Model();
    for (Op op : ops) {
      long before = sm.store.currentRevision();
      ApplyResult r = sm.apply(command(op, before));
      boolean changedBefore = model.rev() != before;
      assertThat(changedBefore).isFalse();
      model.apply(op);
      if (op instanceof Compact) {
        continue; // a compaction below the last one fails; either way the revision does not move
      }
      assertThat(r.hasError()).as("apply %s: %s", op, r.getError()).isFalse();
      // exactly one new revision per write that changed something, none otherwise
      assertThat(sm.store.currentRevision()).isEqualTo(model.rev());
    }
    assertThat(sm.store.compactRevision()).isEqualTo(model.compacted);
    for (long rev = 1; rev <= model.rev(); rev++) {
      long r = rev;
      if (rev < model.compacted) {
        assertThatThrownBy(() -> sm.all(r)).hasMessage("etcdserver: mvcc: required revision has been compacted");
        continue;
      }
      Map<String, String> actual = new TreeMap<>();
      for (KeyValue kv : sm.all(rev).getKvsList()) {
        actual.put(StateMachineHarness.str(kv.getKey()), StateMachineHarness.str(kv.getValue()));
        assertThat(kv.getModRevision()).isLessThanOrEqualTo(rev);
        assertThat(kv.getCreateRevision()).isLessThanOrEqualTo(kv.getModRevision());
      }
      assertThat(actual).as("state at revision %d", rev).isEqualTo(model.states.get((int) rev));
    }
  }

  @Property(tries = 60)
  void applyIsDeterministicAndSnapshotsRoundTrip(@ForAll("ops") @Size(min = 1) List<Op> ops) throws IOException {
    StateMachineHarness a = new StateMachineHarness();
    StateMachineHarness b = new StateMachineHarness();
    for (Op op : ops) {
      RaftCommand c = command(op, a.store.currentRevision());
      assertThat(b.apply(c)).isEqualTo(a.apply(c));
    }
    Path file = Files.createTempFile("prop", ".snap");
    try {
      StoreSnapshot.writeFile(a.store, a.members, 1, ops.size(), file);
      StateMachineHarness restored = new StateMachineHarness();
      StoreSnapshot.load(file, restored.store, restored.members);
      long from = Math.max(1, a.store.compactRevision());
      for (long rev = from; rev <= a.store.currentRevision(); rev++) {
        assertThat(restored.all(rev)).isEqualTo(a.all(rev));
      }
    } finally {
      Files.deleteIfExists(file);
    }
  }

  @Property(tries = 500)
  void keyOrderIsUnsignedLexicographic(@ForAll @Size(max = 6) byte[] a, @ForAll @Size(max = 6) byte[] b) {
    com.google.protobuf.ByteString x = com.google.protobuf.ByteString.copyFrom(a);
    com.google.protobuf.ByteString y = com.google.protobuf.ByteString.copyFrom(b);
    int expected = Integer.signum(java.util.Arrays.compareUnsigned(a, b));
    assertThat(Integer.signum(MvccStore.KEY_ORDER.compare(x, y))).isEqualTo(expected);
    assertThat(Integer.signum(MvccStore.KEY_ORDER.compare(x.concat(y), x))).isEqualTo(b.length == 0 ? 0 : 1);
  }
}
