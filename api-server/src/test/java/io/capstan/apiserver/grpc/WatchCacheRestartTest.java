package io.capstan.apiserver.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.capstan.api.core.v1.ConfigMap;
import io.capstan.api.meta.v1.ObjectMeta;
import io.capstan.api.server.v1.ApiServerGrpc;
import io.capstan.api.server.v1.CreateRequest;
import io.capstan.api.server.v1.DeleteRequest;
import io.capstan.api.server.v1.ListRequest;
import io.capstan.api.server.v1.RawObject;
import io.capstan.api.server.v1.ResourceRef;
import io.capstan.api.server.v1.WatchEvent;
import io.capstan.api.server.v1.WatchRequest;
import io.capstan.apiserver.ApiServer;
import io.capstan.apiserver.storage.EtcdProcess;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** After an api-server restart its watch cache holds exactly what the store holds. */
class WatchCacheRestartTest {
  private static ResourceRef cms(String name) {
    return ResourceRef.newBuilder().setVersion("v1").setResource("configmaps").setNamespace("default").setName(name).build();
  }

  private static void create(ManagedChannel ch, String name) {
    ApiServerGrpc.newBlockingStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS).create(CreateRequest.newBuilder().setRef(cms(""))
        .setObject(RawObject.newBuilder().setData(ConfigMap.newBuilder().setMetadata(ObjectMeta.newBuilder().setName(name))
            .build().toByteString())).build());
  }

  /** name -> resourceVersion as the cache sees it: a watch from "now" replays the cache as ADDED. */
  private static Map<String, String> cacheView(ManagedChannel ch, int expected) throws Exception {
    Map<String, String> seen = new ConcurrentHashMap<>();
    ApiServerGrpc.newStub(ch).watch(WatchRequest.newBuilder().setRef(cms("")).build(), new StreamObserver<WatchEvent>() {
      @Override
      public void onNext(WatchEvent e) {
        try {
          ConfigMap c = ConfigMap.parseFrom(e.getObject().getData());
          seen.put(c.getMetadata().getName(), c.getMetadata().getResourceVersion());
        } catch (Exception ex) {
          throw new IllegalStateException(ex);
        }
      }

      @Override
      public void onError(Throwable t) {}

      @Override
      public void onCompleted() {}
    });
    try {
      org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(20)).until(() -> seen.size() >= expected);
    } catch (org.awaitility.core.ConditionTimeoutException e) {
      // return what arrived: the caller's assertion names the difference
    }
    return new TreeMap<>(seen);
  }

  private static Map<String, String> storeView(ManagedChannel ch) throws Exception {
    Map<String, String> out = new TreeMap<>();
    for (RawObject o : ApiServerGrpc.newBlockingStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS)
        .list(ListRequest.newBuilder().setRef(cms("")).build()).getItemsList()) {
      ConfigMap c = ConfigMap.parseFrom(o.getData());
      out.put(c.getMetadata().getName(), c.getMetadata().getResourceVersion());
    }
    return out;
  }

  @Test
  void cacheMatchesTheStoreAfterRestartWhileAnotherReplicaWrote() throws Exception {
    try (EtcdProcess etcd = new EtcdProcess(); ApiServer b = ApiServer.start(etcd.endpoint(), "127.0.0.1", 0, 0)) {
      ManagedChannel chB = NettyChannelBuilder.forAddress("127.0.0.1", b.grpcPort()).usePlaintext().build();
      try {
        ApiServer a = ApiServer.start(etcd.endpoint(), "127.0.0.1", 0, 0);
        ManagedChannel chA = NettyChannelBuilder.forAddress("127.0.0.1", a.grpcPort()).usePlaintext().build();
        for (int i = 0; i < 5; i++) {
          create(chA, "before-" + i);
        }
        assertThat(cacheView(chA, 5)).hasSize(5);
        chA.shutdownNow();
        a.close();
        // while replica A is down, B changes the state
        for (int i = 0; i < 5; i++) {
          create(chB, "during-" + i);
        }
        ApiServerGrpc.newBlockingStub(chB).delete(DeleteRequest.newBuilder().setRef(cms("before-0")).build());

        try (ApiServer again = ApiServer.start(etcd.endpoint(), "127.0.0.1", 0, 0)) {
          ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", again.grpcPort()).usePlaintext().build();
          try {
            create(chB, "after-restart");
            Map<String, String> store = storeView(chB);
            assertThat(store).hasSize(10);
            assertThat(cacheView(ch, store.size())).isEqualTo(store);
            // a list at resourceVersion=0 is served from the cache and matches too
            Map<String, String> cachedList = new TreeMap<>();
            for (RawObject o : ApiServerGrpc.newBlockingStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS)
                .list(ListRequest.newBuilder().setRef(cms("")).setResourceVersion("0").build()).getItemsList()) {
              ConfigMap c = ConfigMap.parseFrom(o.getData());
              cachedList.put(c.getMetadata().getName(), c.getMetadata().getResourceVersion());
            }
            assertThat(cachedList).isEqualTo(store);
          } finally {
            ch.shutdownNow();
          }
        }
      } finally {
        chB.shutdownNow();
      }
    }
  }
}
