package io.capstan.apiserver.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.capstan.api.core.v1.Container;
import io.capstan.api.core.v1.Pod;
import io.capstan.api.core.v1.PodSpec;
import io.capstan.api.meta.v1.ObjectMeta;
import io.capstan.api.meta.v1.Status;
import io.capstan.api.server.v1.ApiServerGrpc;
import io.capstan.api.server.v1.BindRequest;
import io.capstan.api.server.v1.CreateRequest;
import io.capstan.api.server.v1.DeleteRequest;
import io.capstan.api.server.v1.GetRequest;
import io.capstan.api.server.v1.ListRequest;
import io.capstan.api.server.v1.RawObject;
import io.capstan.api.server.v1.ResourceRef;
import io.capstan.api.server.v1.UpdateRequest;
import io.capstan.apiserver.ApiServer;
import io.capstan.kvstore.testing.MiniCluster;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.net.HttpURLConnection;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Two api-server replicas over one kvstore, driven through the gRPC API as components use it. */
class ApiServerServiceTest {
  private static MiniCluster kvstore;
  private static ApiServer a;
  private static ApiServer b;
  private static ManagedChannel chA;
  private static ManagedChannel chB;

  @BeforeAll
  static void start() throws Exception {
    kvstore = MiniCluster.start(1);
    a = ApiServer.start(kvstore.endpoint(0), "127.0.0.1", 0, 0);
    b = ApiServer.start(kvstore.endpoint(0), "127.0.0.1", 0, 0);
    chA = NettyChannelBuilder.forAddress("127.0.0.1", a.grpcPort()).usePlaintext().build();
    chB = NettyChannelBuilder.forAddress("127.0.0.1", b.grpcPort()).usePlaintext().build();
  }

  @AfterAll
  static void stop() {
    for (ManagedChannel c : new ManagedChannel[] {chA, chB}) {
      if (c != null) {
        c.shutdownNow();
      }
    }
    for (AutoCloseable c : new AutoCloseable[] {a, b, kvstore}) {
      try {
        if (c != null) {
          c.close();
        }
      } catch (Exception ignored) {
        // keep closing the rest
      }
    }
  }

  private static ApiServerGrpc.ApiServerBlockingStub api(ManagedChannel ch) {
    return ApiServerGrpc.newBlockingStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS);
  }

  private static ResourceRef pods(String ns, String name) {
    return ResourceRef.newBuilder().setVersion("v1").setResource("pods").setNamespace(ns).setName(name).build();
  }

  private static RawObject raw(Pod p) {
    return RawObject.newBuilder().setData(p.toByteString()).build();
  }

  private static Pod pod(String name) {
    return Pod.newBuilder().setMetadata(ObjectMeta.newBuilder().setName(name))
        .setSpec(PodSpec.newBuilder().addContainers(Container.newBuilder().setName("c").setImage("busybox"))).build();
  }

  private static Pod parse(RawObject r) throws Exception {
    return Pod.parseFrom(r.getData());
  }

  private static Status statusOf(StatusRuntimeException e) throws Exception {
    return Status.parseFrom(e.getTrailers().get(ApiServerService.STATUS_KEY));
  }

  @Test
  void createFillsServerFieldsAndEveryReplicaSeesIt() throws Exception {
    Pod created = parse(api(chA).create(CreateRequest.newBuilder().setRef(pods("default", "")).setObject(raw(pod("web"))).build()));
    assertThat(created.getApiVersion()).isEqualTo("v1");
    assertThat(created.getKind()).isEqualTo("Pod");
    assertThat(created.getMetadata().getNamespace()).isEqualTo("default");
    assertThat(created.getMetadata().getUid()).isNotEmpty();
    assertThat(created.getMetadata().getCreationTimestamp()).endsWith("Z");
    assertThat(created.getMetadata().getResourceVersion()).isNotEmpty();
    Pod viaB = parse(api(chB).get(GetRequest.newBuilder().setRef(pods("default", "web")).build()));
    assertThat(viaB).isEqualTo(created);
    assertThat(api(chB).list(ListRequest.newBuilder().setRef(pods("default", "")).build()).getItemsCount()).isPositive();
  }

  @Test
  void staleUpdateThroughTheOtherReplicaIsAConflictWithAStatus() throws Exception {
    Pod p = parse(api(chA).create(CreateRequest.newBuilder().setRef(pods("default", "")).setObject(raw(pod("cas"))).build()));
    api(chA).update(UpdateRequest.newBuilder().setRef(pods("default", "cas"))
        .setObject(raw(p.toBuilder().setMetadata(p.getMetadata().toBuilder().putLabels("disk", "ssd")).build())).build());
    assertThatThrownBy(() -> api(chB).update(UpdateRequest.newBuilder().setRef(pods("default", "cas")).setObject(raw(p)).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
          assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.ABORTED);
          try {
            Status s = statusOf(e);
            assertThat(s.getReason()).isEqualTo("Conflict");
            assertThat(s.getCode()).isEqualTo(409);
          } catch (Exception ex) {
            throw new AssertionError(ex);
          }
        });
  }

  @Test
  void twoConcurrentBindersExactlyOneWins() throws Exception {
    api(chA).create(CreateRequest.newBuilder().setRef(pods("default", "")).setObject(raw(pod("bindme"))).build());
    AtomicInteger ok = new AtomicInteger();
    AtomicInteger refused = new AtomicInteger();
    CountDownLatch go = new CountDownLatch(1);
    List<Thread> threads = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      ManagedChannel ch = i % 2 == 0 ? chA : chB;
      String node = "node-" + i;
      Thread t = new Thread(() -> {
        try {
          go.await();
          api(ch).bind(BindRequest.newBuilder().setRef(pods("default", "bindme")).setNodeName(node).build());
          ok.incrementAndGet();
        } catch (StatusRuntimeException e) {
          if (e.getStatus().getCode() == io.grpc.Status.Code.ABORTED) {
            refused.incrementAndGet();
          }
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      });
      t.start();
      threads.add(t);
    }
    go.countDown();
    for (Thread t : threads) {
      t.join(30_000);
    }
    assertThat(ok.get()).isEqualTo(1);
    assertThat(refused.get()).isEqualTo(5);
    Pod bound = parse(api(chB).get(GetRequest.newBuilder().setRef(pods("default", "bindme")).build()));
    assertThat(bound.getSpec().getNodeName()).startsWith("node-");
  }

  @Test
  void badInputGetsSpecificErrors() {
    assertThatThrownBy(() -> api(chA).get(GetRequest.newBuilder()
        .setRef(ResourceRef.newBuilder().setVersion("v1").setResource("widgets").setName("x")).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
          assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.NOT_FOUND);
          assertThat(e.getStatus().getDescription()).contains("could not find the requested resource (widgets)");
        });
    assertThatThrownBy(() -> api(chA).create(CreateRequest.newBuilder().setRef(pods("default", ""))
        .setObject(RawObject.newBuilder().setData(ByteString.copyFromUtf8("\u00ff\u00ff not protobuf"))).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.INVALID_ARGUMENT));
    Pod wrongNs = pod("x").toBuilder().setMetadata(ObjectMeta.newBuilder().setName("x").setNamespace("other")).build();
    assertThatThrownBy(() -> api(chA).create(CreateRequest.newBuilder().setRef(pods("default", "")).setObject(raw(wrongNs)).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getDescription())
            .isEqualTo("the namespace of the provided object does not match the namespace sent on the request"));
    assertThatThrownBy(() -> api(chA).create(CreateRequest.newBuilder().setRef(pods("default", "")).setObject(raw(pod(""))).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getDescription())
            .contains("metadata.name: Required value"));
    assertThatThrownBy(() -> api(chA).get(GetRequest.newBuilder().setRef(pods("default", "nope")).build()))
        .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
          assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.NOT_FOUND);
          assertThat(e.getStatus().getDescription()).isEqualTo("pods \"nope\" not found");
        });
  }

  /**
   * Replica B checks namespaces against its watch cache, which may lag behind a deletion started
   * through replica A an instant before. The create is conditional on the namespace's version in
   * the same transaction, so no object ever lands in a namespace already terminating.
   */
  @Test
  void noObjectLandsInANamespaceWhoseDeletionBeganThroughTheOtherReplica() throws Exception {
    ResourceRef namespaces = ResourceRef.newBuilder().setVersion("v1").setResource("namespaces").build();
    for (int i = 0; i < 20; i++) {
      String ns = "racing-" + i;
      api(chA).create(CreateRequest.newBuilder().setRef(namespaces).setObject(RawObject.newBuilder().setData(
          io.capstan.api.core.v1.Namespace.newBuilder().setMetadata(ObjectMeta.newBuilder().setName(ns)).build().toByteString())).build());
      // B learns the namespace (from its cache or, if that lags, from the store) ...
      api(chB).create(CreateRequest.newBuilder().setRef(pods(ns, "")).setObject(raw(pod("before"))).build());
      // ... then A begins deleting it, and B is asked for another pod at once.
      api(chA).delete(DeleteRequest.newBuilder().setRef(namespaces.toBuilder().setName(ns)).build());
      assertThatThrownBy(() -> api(chB).create(CreateRequest.newBuilder().setRef(pods(ns, "")).setObject(raw(pod("after"))).build()))
          .as("create in %s after its deletion began", ns)
          .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            try {
              assertThat(statusOf(e).getCode()).isEqualTo(403);
            } catch (Exception ex) {
              throw new AssertionError(ex);
            }
          });
    }
  }

  @Test
  void adminEndpointsAnswer() throws Exception {
    for (String path : new String[] {"/healthz", "/readyz", "/metrics"}) {
      HttpURLConnection c = (HttpURLConnection) URI.create("http://127.0.0.1:" + a.httpPort() + path).toURL().openConnection();
      assertThat(c.getResponseCode()).as(path).isEqualTo(200);
      c.disconnect();
    }
  }
}
