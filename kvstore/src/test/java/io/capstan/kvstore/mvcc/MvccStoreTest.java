package io.capstan.kvstore.mvcc;

import static io.capstan.kvstore.mvcc.StateMachineHarness.bs;
import static io.capstan.kvstore.mvcc.StateMachineHarness.str;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.grpc.Status;
import org.junit.jupiter.api.Test;

/** MVCC revisions, versions, ranges and compaction, as etcd defines them. */
class MvccStoreTest {
  private final StateMachineHarness sm = new StateMachineHarness();

  @Test
  void revisionsStartAtOneAndGrowByOnePerChangingWrite() {
    assertThat(sm.store.currentRevision()).isEqualTo(1);
    assertThat(sm.put("a", "1").getHeader().getRevision()).isEqualTo(2);
    assertThat(sm.put("b", "1").getHeader().getRevision()).isEqualTo(3);
    // deleting nothing changes nothing: no new revision
    assertThat(sm.delete("zzz", null, false).getDeleted()).isZero();
    assertThat(sm.store.currentRevision()).isEqualTo(3);
    assertThat(sm.delete("a", null, false).getHeader().getRevision()).isEqualTo(4);
  }

  @Test
  void createModVersionAndVersionResetAfterDelete() {
    sm.put("k", "1");
    sm.put("k", "2");
    KeyValue kv = sm.get("k").getKvs(0);
    assertThat(kv.getCreateRevision()).isEqualTo(2);
    assertThat(kv.getModRevision()).isEqualTo(3);
    assertThat(kv.getVersion()).isEqualTo(2);
    sm.delete("k", null, false);
    sm.put("k", "3");
    KeyValue again = sm.get("k").getKvs(0);
    assertThat(again.getCreateRevision()).isEqualTo(5);
    assertThat(again.getVersion()).isEqualTo(1);
    // the old generation is still readable at its revision
    assertThat(str(sm.getAt("k", 3).getKvs(0).getValue())).isEqualTo("2");
    assertThat(sm.getAt("k", 4).getKvsCount()).isZero();
  }

  @Test
  void rangesPrefixesLimitCountAndMore() {
    for (String k : new String[] {"a", "b/1", "b/2", "b/3", "c"}) {
      sm.put(k, "v-" + k);
    }
    RangeResponse prefix = sm.range(RangeRequest.newBuilder().setKey(bs("b/")).setRangeEnd(bs("b0")).build());
    assertThat(prefix.getKvsList()).extracting(kv -> str(kv.getKey())).containsExactly("b/1", "b/2", "b/3");
    assertThat(prefix.getCount()).isEqualTo(3);
    assertThat(prefix.getMore()).isFalse();

    RangeResponse limited = sm.range(RangeRequest.newBuilder().setKey(bs("b/")).setRangeEnd(bs("b0")).setLimit(2).build());
    assertThat(limited.getKvsCount()).isEqualTo(2);
    assertThat(limited.getCount()).isEqualTo(3);
    assertThat(limited.getMore()).isTrue();

    RangeResponse fromB = sm.range(RangeRequest.newBuilder().setKey(bs("b/2")).setRangeEnd(bs("\0")).build());
    assertThat(fromB.getKvsList()).extracting(kv -> str(kv.getKey())).containsExactly("b/2", "b/3", "c");

    RangeResponse countOnly = sm.range(RangeRequest.newBuilder().setKey(bs("\0")).setRangeEnd(bs("\0")).setCountOnly(true).build());
    assertThat(countOnly.getKvsCount()).isZero();
    assertThat(countOnly.getCount()).isEqualTo(5);

    RangeResponse keysOnly = sm.range(RangeRequest.newBuilder().setKey(bs("a")).setKeysOnly(true).build());
    assertThat(keysOnly.getKvs(0).getValue().isEmpty()).isTrue();
    assertThat(keysOnly.getKvs(0).getModRevision()).isEqualTo(2);
  }

  @Test
  void sortOnEveryTargetAndRevisionFilters() {
    sm.put("x", "3");  // rev 2
    sm.put("y", "1");  // rev 3
    sm.put("z", "2");  // rev 4
    sm.put("x", "4");  // rev 5: x has mod 5, create 2, version 2
    RangeRequest.Builder all = RangeRequest.newBuilder().setKey(bs("x")).setRangeEnd(bs("{"));
    assertThat(keys(sm.range(all.clone().setSortTarget(RangeRequest.SortTarget.VALUE).setSortOrder(RangeRequest.SortOrder.ASCEND).build())))
        .containsExactly("y", "z", "x");
    assertThat(keys(sm.range(all.clone().setSortTarget(RangeRequest.SortTarget.MOD).setSortOrder(RangeRequest.SortOrder.DESCEND).build())))
        .containsExactly("x", "z", "y");
    assertThat(keys(sm.range(all.clone().setSortTarget(RangeRequest.SortTarget.CREATE).setSortOrder(RangeRequest.SortOrder.ASCEND).build())))
        .containsExactly("x", "y", "z");
    assertThat(keys(sm.range(all.clone().setSortTarget(RangeRequest.SortTarget.VERSION).setSortOrder(RangeRequest.SortOrder.DESCEND).build())).get(0))
        .isEqualTo("x");
    assertThat(keys(sm.range(all.clone().setSortTarget(RangeRequest.SortTarget.KEY).setSortOrder(RangeRequest.SortOrder.DESCEND).build())))
        .containsExactly("z", "y", "x");
    assertThat(keys(sm.range(all.clone().setMinModRevision(4).build()))).containsExactly("x", "z");
    assertThat(keys(sm.range(all.clone().setMaxModRevision(3).build()))).containsExactly("y");
    assertThat(keys(sm.range(all.clone().setMinCreateRevision(3).build()))).containsExactly("y", "z");
    assertThat(keys(sm.range(all.clone().setMaxCreateRevision(2).build()))).containsExactly("x");
  }

  @Test
  void futureRevisionFails() {
    sm.put("a", "1");
    assertThatThrownBy(() -> sm.getAt("a", 99))
        .isInstanceOfSatisfying(KvException.class, e -> assertThat(e.code()).isEqualTo(Status.Code.OUT_OF_RANGE))
        .hasMessage("etcdserver: mvcc: required revision is a future revision");
  }

  @Test
  void compactionDiscardsHistoryBelowButKeepsLatestVersions() {
    sm.put("a", "1");          // 2
    sm.put("a", "2");          // 3
    sm.put("gone", "x");       // 4
    sm.delete("gone", null, false); // 5
    sm.put("b", "1");          // 6
    assertThat(sm.compact(5).hasError()).isFalse();
    assertThat(sm.store.compactRevision()).isEqualTo(5);
    assertThatThrownBy(() -> sm.getAt("a", 4)).hasMessage("etcdserver: mvcc: required revision has been compacted");
    // at the compact revision itself the state is intact
    RangeResponse at5 = sm.all(5);
    assertThat(keys(at5)).containsExactly("a");
    assertThat(str(at5.getKvs(0).getValue())).isEqualTo("2");
    assertThat(sm.get("a").getKvs(0).getVersion()).isEqualTo(2);
    // compacting again at or below it fails; beyond the current revision too
    assertThat(sm.compact(4).getError().getMessage()).isEqualTo("etcdserver: mvcc: required revision has been compacted");
    assertThat(sm.compact(100).getError().getMessage()).isEqualTo("etcdserver: mvcc: required revision is a future revision");
  }

  @Test
  void putOptions() {
    sm.put("k", "v1");
    var prev = sm.put(PutRequest.newBuilder().setKey(bs("k")).setValue(bs("v2")).setPrevKv(true).build());
    assertThat(str(prev.getPrevKv().getValue())).isEqualTo("v1");
    sm.put(PutRequest.newBuilder().setKey(bs("k")).setIgnoreValue(true).build());
    assertThat(str(sm.get("k").getKvs(0).getValue())).isEqualTo("v2");
    assertThat(sm.get("k").getKvs(0).getVersion()).isEqualTo(3);
    assertThat(sm.putError(PutRequest.newBuilder().setKey(bs("missing")).setIgnoreValue(true).build()).getMessage())
        .isEqualTo("etcdserver: key not found");
    assertThat(sm.putError(PutRequest.newBuilder().setKey(bs("missing")).setIgnoreLease(true).build()).getMessage())
        .isEqualTo("etcdserver: key not found");
    assertThat(sm.putError(PutRequest.newBuilder().setKey(bs("k")).setLease(42).build()).getMessage())
        .isEqualTo("etcdserver: requested lease not found");
  }

  @Test
  void deleteRangeReturnsPrevKvs() {
    sm.put("p/1", "a");
    sm.put("p/2", "b");
    sm.put("q", "c");
    var d = sm.delete("p/", "p0", true);
    assertThat(d.getDeleted()).isEqualTo(2);
    assertThat(d.getPrevKvsList()).extracting(kv -> str(kv.getValue())).containsExactly("a", "b");
    assertThat(d.getHeader().getRevision()).isEqualTo(5);
    assertThat(sm.all(5).getKvsList()).extracting(kv -> str(kv.getKey())).containsExactly("q");
  }

  private static java.util.List<String> keys(RangeResponse r) {
    return r.getKvsList().stream().map(kv -> str(kv.getKey())).toList();
  }
}
