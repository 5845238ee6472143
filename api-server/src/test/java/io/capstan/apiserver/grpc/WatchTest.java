package io.capstan.apiserver.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.capstan.api.core.v1.Pod;
import io.capstan.api.core.v1.PodSpec;
import io.capstan.api.meta.v1.ObjectMeta;
import io.capstan.api.server.v1.ApiServerGrpc;
import io.capstan.api.server.v1.CreateRequest;
import io.capstan.api.server.v1.DeleteRequest;
import io.capstan.api.server.v1.RawObject;
import io.capstan.api.server.v1.ResourceRef;
import io.capstan.api.server.v1.UpdateRequest;
import io.capstan.api.server.v1.WatchEvent;
import io.capstan.api.server.v1.WatchRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Watches from the api-server's watch cache, here over a real etcd 3.4. */
class WatchTest {
  private static ApiServerOnEtcd fixture;
  private static ManagedChannel ch;

  @BeforeAll
  static void start() throws Exception {
    System.setProperty("capstan.watch.bookmark-seconds", "1");
    try {
      fixture = new ApiServerOnEtcd(5);
    } finally {
      System.clearProperty("capstan.watch.bookmark-seconds");
    }
    ch = fixture.channel;
  }

  @AfterAll
  static void stop() {
    if (fixture != null) {
      fixture.close();
    }
  }

  private static ApiServerGrpc.ApiServerBlockingStub api() {
    return fixture.api();
  }

  private static ResourceRef ref(String ns, String name) {
    return ResourceRef.newBuilder().setVersion("v1").setResource("pods").setNamespace(ns).setName(name).build();
  }

  private static void namespace(String name) {
    io.capstan.api.core.v1.Namespace ns = io.capstan.api.core.v1.Namespace.newBuilder()
        .setMetadata(ObjectMeta.newBuilder().setName(name)).build();
    try {
      api().create(CreateRequest.newBuilder().setRef(ResourceRef.newBuilder().setVersion("v1").setResource("namespaces"))
          .setObject(RawObject.newBuilder().setData(ns.toByteString())).build());
    } catch (io.grpc.StatusRuntimeException e) {
      if (e.getStatus().getCode() != Status.Code.ALREADY_EXISTS) {
        throw e;
      }
    }
  }

  private static Pod create(String ns, String name) throws Exception {
    namespace(ns);
    Pod p = Pod.newBuilder().setMetadata(ObjectMeta.newBuilder().setName(name))
        .setSpec(PodSpec.newBuilder().addContainers(io.capstan.api.core.v1.Container.newBuilder().setName("c").setImage("busybox"))).build();
    return Pod.parseFrom(api().create(CreateRequest.newBuilder().setRef(ref(ns, ""))
        .setObject(RawObject.newBuilder().setData(p.toByteString())).build()).getData());
  }

  private static Pod label(Pod p, String value) throws Exception {
    Pod changed = p.toBuilder().setMetadata(p.getMetadata().toBuilder().putLabels("v", value)).build();
    return Pod.parseFrom(api().update(UpdateRequest.newBuilder().setRef(ref(p.getMetadata().getNamespace(), p.getMetadata().getName()))
        .setObject(RawObject.newBuilder().setData(changed.toByteString())).build()).getData());
  }

  /** A watch stream's events and its end, collected as they come. */
  static final class Collector implements StreamObserver<WatchEvent> {
    final BlockingQueue<WatchEvent> events = new LinkedBlockingQueue<>();
    volatile Throwable error;

    @Override
    public void onNext(WatchEvent e) {
      events.add(e);
    }

    @Override
    public void onError(Throwable t) {
      error = t;
    }

    @Override
    public void onCompleted() {}

    List<String> take(int n) throws Exception {
      List<String> out = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        WatchEvent e = events.poll(20, TimeUnit.SECONDS);
        assertThat(e).as("event %d of %d (error %s)", i + 1, n, error).isNotNull();
        Pod p = Pod.parseFrom(e.getObject().getData());
        out.add(e.getType() + " " + p.getMetadata().getName() + " " + p.getMetadata().getLabelsOrDefault("v", "-"));
        assertThat(p.getMetadata().getResourceVersion()).isEqualTo(e.getResourceVersion());
      }
      return out;
    }
  }

  @Test
  void watchFromAPastVersionReplaysThenFollows() throws Exception {
    Pod a = create("w1", "a");
    Pod a2 = label(a, "2");
    create("w1", "b");
    Collector c = new Collector();
    ApiServerGrpc.newStub(ch).watch(WatchRequest.newBuilder().setRef(ref("w1", ""))
        .setResourceVersion(a.getMetadata().getResourceVersion()).build(), c);
    assertThat(c.take(2)).containsExactly("MODIFIED a 2", "ADDED b -");
    api().delete(DeleteRequest.newBuilder().setRef(ref("w1", "b")).build());
    label(a2, "3");
    assertThat(c.take(2)).containsExactly("DELETED b -", "MODIFIED a 3");
  }

  @Test
  void watchFromNowStartsWithTheCurrentObjectsAndFiltersByNamespaceAndName() throws Exception {
    create("w2", "x");
    create("w2", "y");
    create("w2-other", "x");
    Collector all = new Collector();
    ApiServerGrpc.newStub(ch).watch(WatchRequest.newBuilder().setRef(ref("w2", "")).build(), all);
    assertThat(all.take(2)).containsExactlyInAnyOrder("ADDED x -", "ADDED y -");
    Collector one = new Collector();
    ApiServerGrpc.newStub(ch).watch(WatchRequest.newBuilder().setRef(ref("w2", "y")).build(), one);
    assertThat(one.take(1)).containsExactly("ADDED y -");
    create("w2", "z");
    assertThat(all.take(1)).containsExactly("ADDED z -");
    assertThat(one.events.poll(300, TimeUnit.MILLISECONDS)).as("filtered out").isNull();
  }

  @Test
  void watchFromAVersionOlderThanTheWindowIsExpired() throws Exception {
    Pod p = create("w3", "old");
    String first = p.getMetadata().getResourceVersion();
    for (int i = 0; i < 8; i++) {
      p = label(p, "v" + i); // the window holds 5 events
    }
    Collector c = new Collector();
    ApiServerGrpc.newStub(ch).watch(WatchRequest.newBuilder().setRef(ref("w3", "")).setResourceVersion(first).build(), c);
    org.awaitility.Awaitility.await("the watch fails").atMost(java.time.Duration.ofSeconds(20)).until(() -> c.error != null);
    assertThat(Status.fromThrowable(c.error).getCode()).isEqualTo(Status.Code.OUT_OF_RANGE);
    assertThat(c.error.getMessage()).contains("too old resource version");
  }

  @Test
  void watchesThatAllowBookmarksGetThemAtTheVersionReachedAndOthersDoNot() throws Exception {
    create("w4", "first");
    Collector withBookmarks = new Collector();
    ApiServerGrpc.newStub(ch).watch(WatchRequest.newBuilder().setRef(ref("w4", "")).setAllowBookmarks(true).build(), withBookmarks);
    Collector without = new Collector();
    ApiServerGrpc.newStub(ch).watch(WatchRequest.newBuilder().setRef(ref("w4", "")).build(), without);
    assertThat(withBookmarks.take(1)).containsExactly("ADDED first -");
    assertThat(without.take(1)).containsExactly("ADDED first -");
    Pod second = create("w4", "second");
    long secondRv = Long.parseLong(second.getMetadata().getResourceVersion());
    // the bookmark comes after the event and carries a version at or past it (the interval is 1 s here)
    List<String> seen = withBookmarks.take(2);
    assertThat(seen.get(0)).isEqualTo("ADDED second -");
    assertThat(seen.get(1)).startsWith("BOOKMARK");
    assertThat(without.take(1)).containsExactly("ADDED second -");
    assertThat(without.events.poll(2500, TimeUnit.MILLISECONDS)).as("no bookmark unless asked for").isNull();
    WatchEvent bookmark = withBookmarks.events.poll(5, TimeUnit.SECONDS);
    assertThat(bookmark).isNotNull();
    assertThat(bookmark.getType()).isEqualTo("BOOKMARK");
    assertThat(Long.parseLong(bookmark.getResourceVersion())).isGreaterThanOrEqualTo(secondRv);
    assertThat(Pod.parseFrom(bookmark.getObject().getData()).getMetadata().getName()).isEmpty();
  }
}
