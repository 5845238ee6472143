package io.capstan.kvstore.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.testing.MiniCluster;
import io.capstan.kvstore.testing.WatchClient;
import io.etcd.jetcd.api.CompactionRequest;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.TxnRequest;
import io.etcd.jetcd.api.WatchCancelRequest;
import io.etcd.jetcd.api.WatchCreateRequest;
import io.etcd.jetcd.api.WatchProgressRequest;
import io.etcd.jetcd.api.WatchRequest;
import io.etcd.jetcd.api.WatchResponse;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * etcd's watch semantics on one stream with many watchers, field by field: each watcher gets its
 * own view of the same revisions (its key or range, its filters, previous values or not), all
 * events of a revision in one response, under its own watch ID; cancel, progress requests, replay
 * from a past revision and the compacted start.
 */
class WatchSemanticsTest {
  private static MiniCluster cluster;

  @BeforeAll
  static void start() {
    cluster = MiniCluster.start(1);
  }

  @AfterAll
  static void stop() {
    cluster.close();
  }

  private static ByteString b(String s) {
    return ByteString.copyFromUtf8(s);
  }

  private static KVGrpc.KVBlockingStub kv() {
    return KVGrpc.newBlockingStub(cluster.channel(0)).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  private static long put(String key, String value) {
    return kv().put(PutRequest.newBuilder().setKey(b(key)).setValue(b(value)).build()).getHeader().getRevision();
  }

  private static WatchCreateRequest.Builder watch(String key) {
    return WatchCreateRequest.newBuilder().setKey(b(key));
  }

  /** Responses with events that arrived while {@link #create} waited for a created response. */
  private final List<WatchResponse> early = new ArrayList<>();

  /** Creates the watchers in order, returns their IDs from the created responses. */
  private List<Long> create(WatchClient w, WatchCreateRequest.Builder... creates) throws InterruptedException {
    List<Long> ids = new ArrayList<>();
    for (WatchCreateRequest.Builder c : creates) {
      w.create(c.build());
      WatchResponse created = w.await(r -> {
        if (r.getEventsCount() > 0) {
          early.add(r); // a watcher created before replays its history meanwhile
        }
        return r.getCreated();
      }, 10_000);
      assertThat(created.getCanceled()).isFalse();
      ids.add(created.getWatchId());
    }
    return ids;
  }

  /** Responses with events, by watch ID, until {@code total} events arrived. */
  private Map<Long, List<WatchResponse>> collect(WatchClient w, int total) throws InterruptedException {
    Map<Long, List<WatchResponse>> out = new HashMap<>();
    int events = 0;
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (events < total && System.nanoTime() < deadline) {
      WatchResponse r = early.isEmpty() ? w.poll(50) : early.remove(0);
      if (r != null && r.getEventsCount() > 0) {
        out.computeIfAbsent(r.getWatchId(), k -> new ArrayList<>()).add(r);
        events += r.getEventsCount();
      }
    }
    assertThat(events).as("events received").isEqualTo(total);
    // nothing more than that arrives
    WatchResponse extra = w.poll(300);
    assertThat(extra).as("a response after the expected ones").isNull();
    return out;
  }

  private static String describe(WatchResponse r) {
    StringBuilder s = new StringBuilder("@" + r.getHeader().getRevision());
    for (Event e : r.getEventsList()) {
      s.append(' ').append(e.getType()).append(' ').append(e.getKv().getKey().toStringUtf8());
      if (e.getType() == Event.EventType.PUT) {
        s.append('=').append(e.getKv().getValue().toStringUtf8());
      }
      s.append(" mod ").append(e.getKv().getModRevision());
      if (e.hasPrevKv()) {
        s.append(" prev=").append(e.getPrevKv().getValue().toStringUtf8());
      }
    }
    return s.toString();
  }

  private static List<String> described(List<WatchResponse> rs) {
    return rs == null ? List.of() : rs.stream().map(WatchSemanticsTest::describe).toList();
  }

  @Test
  void watchersOnOneStreamEachGetTheirOwnViewOfTheSameRevisions() throws Exception {
    try (WatchClient w = new WatchClient(cluster.channel(0))) {
      List<Long> ids = create(w,
          watch("ws/k"),
          watch("ws/k").setPrevKv(true),
          watch("ws/").setRangeEnd(b("ws0")).addFilters(WatchCreateRequest.FilterType.NOPUT),
          watch("ws/k").addFilters(WatchCreateRequest.FilterType.NODELETE),
          watch("ws/other"),
          watch("ws/").setRangeEnd(b("ws0")).setPrevKv(true));
      long plain = ids.get(0), withPrev = ids.get(1), deletesInRange = ids.get(2), putsOnly = ids.get(3),
          other = ids.get(4), range = ids.get(5);
      assertThat(ids).doesNotHaveDuplicates();

      long r1 = put("ws/k", "v1");
      long r2 = put("ws/k", "v2");
      long r3 = kv().txn(TxnRequest.newBuilder()
          .addSuccess(RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(b("ws/j")).setValue(b("x"))))
          .addSuccess(RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(b("ws/k")).setValue(b("v3"))))
          .build()).getHeader().getRevision();
      long r4 = kv().deleteRange(DeleteRangeRequest.newBuilder().setKey(b("ws/k")).build()).getHeader().getRevision();

      // plain 4, withPrev 4, deletesInRange 1, putsOnly 3, range 5 (two in r3's response)
      Map<Long, List<WatchResponse>> got = collect(w, 4 + 4 + 1 + 3 + 5);
      assertThat(described(got.get(plain))).containsExactly(
          "@" + r1 + " PUT ws/k=v1 mod " + r1, "@" + r2 + " PUT ws/k=v2 mod " + r2,
          "@" + r3 + " PUT ws/k=v3 mod " + r3, "@" + r4 + " DELETE ws/k mod " + r4);
      assertThat(described(got.get(withPrev))).containsExactly(
          "@" + r1 + " PUT ws/k=v1 mod " + r1, "@" + r2 + " PUT ws/k=v2 mod " + r2 + " prev=v1",
          "@" + r3 + " PUT ws/k=v3 mod " + r3 + " prev=v2", "@" + r4 + " DELETE ws/k mod " + r4 + " prev=v3");
      assertThat(described(got.get(deletesInRange))).containsExactly("@" + r4 + " DELETE ws/k mod " + r4);
      assertThat(described(got.get(putsOnly))).containsExactly(
          "@" + r1 + " PUT ws/k=v1 mod " + r1, "@" + r2 + " PUT ws/k=v2 mod " + r2, "@" + r3 + " PUT ws/k=v3 mod " + r3);
      assertThat(got.get(other)).isNull();
      // a revision's events arrive together, in the order of the transaction
      assertThat(described(got.get(range))).containsExactly(
          "@" + r1 + " PUT ws/k=v1 mod " + r1, "@" + r2 + " PUT ws/k=v2 mod " + r2 + " prev=v1",
          "@" + r3 + " PUT ws/j=x mod " + r3 + " PUT ws/k=v3 mod " + r3 + " prev=v2",
          "@" + r4 + " DELETE ws/k mod " + r4 + " prev=v3");
      // every field of an event is the store's: create revision and version too
      Event third = got.get(plain).get(2).getEvents(0);
      assertThat(third.getKv().getCreateRevision()).isEqualTo(r1);
      assertThat(third.getKv().getVersion()).isEqualTo(3);
      assertThat(got.get(plain).get(0).getHeader().getMemberId()).isNotZero();
      assertThat(got.get(plain).get(0).getHeader().getClusterId()).isNotZero();
    }
  }

  @Test
  void aCancelledWatcherGetsNothingMoreAndAProgressRequestNamesTheCurrentRevision() throws Exception {
    try (WatchClient w = new WatchClient(cluster.channel(0))) {
      List<Long> ids = create(w, watch("wc/k"), watch("wc/k"));
      w.send(WatchRequest.newBuilder().setCancelRequest(WatchCancelRequest.newBuilder().setWatchId(ids.get(0))).build());
      WatchResponse canceled = w.await(WatchResponse::getCanceled, 10_000);
      assertThat(canceled.getWatchId()).isEqualTo(ids.get(0));
      long rev = put("wc/k", "after the cancel");
      Map<Long, List<WatchResponse>> got = collect(w, 1);
      assertThat(got.keySet()).containsExactly(ids.get(1));

      w.send(WatchRequest.newBuilder().setProgressRequest(WatchProgressRequest.getDefaultInstance()).build());
      WatchResponse progress = w.await(r -> r.getEventsCount() == 0 && !r.getCreated() && !r.getCanceled(), 10_000);
      assertThat(progress.getWatchId()).isEqualTo(-1);
      assertThat(progress.getHeader().getRevision()).isGreaterThanOrEqualTo(rev);
    }
  }

  @Test
  void aWatcherFromAPastRevisionReplaysItAndOneBelowTheCompactionIsCanceledWithItsRevision() throws Exception {
    long first = put("wr/k", "1");
    put("wr/k", "2");
    long third = put("wr/k", "3");
    try (WatchClient w = new WatchClient(cluster.channel(0))) {
      List<Long> ids = create(w, watch("wr/k").setStartRevision(first).setPrevKv(true), watch("wr/k").setStartRevision(third));
      Map<Long, List<WatchResponse>> got = collect(w, 3 + 1);
      assertThat(described(got.get(ids.get(0)))).containsExactly("@" + first + " PUT wr/k=1 mod " + first,
          "@" + (first + 1) + " PUT wr/k=2 mod " + (first + 1) + " prev=1", "@" + third + " PUT wr/k=3 mod " + third + " prev=2");
      assertThat(described(got.get(ids.get(1)))).containsExactly("@" + third + " PUT wr/k=3 mod " + third);
    }
    kv().compact(CompactionRequest.newBuilder().setRevision(third).build());
    try (WatchClient w = new WatchClient(cluster.channel(0))) {
      w.create(watch("wr/k").setStartRevision(first).build());
      WatchResponse canceled = w.await(WatchResponse::getCanceled, 10_000);
      assertThat(canceled.getCompactRevision()).isEqualTo(third);
      assertThat(canceled.getCancelReason()).isEqualTo("etcdserver: mvcc: required revision has been compacted");
    }
  }
}
