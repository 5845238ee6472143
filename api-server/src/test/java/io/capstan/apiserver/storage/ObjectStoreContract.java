package io.capstan.apiserver.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.api.core.v1.Container;
import io.capstan.api.core.v1.Node;
import io.capstan.api.core.v1.Pod;
import io.capstan.api.core.v1.PodSpec;
import io.capstan.api.meta.v1.ObjectMeta;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The storage contract, run against each store the api-server must work with (Capstan's kvstore
 * and a real etcd 3.4): subclasses give the endpoints.
 */
abstract class ObjectStoreContract {
  protected abstract EtcdClient client();

  private ObjectStore<Pod> pods;
  private ObjectStore<Node> nodes;
  private String ns;

  @BeforeEach
  void stores() {
    pods = new ObjectStore<>(client(), "", "pods", Pod.getDefaultInstance());
    nodes = new ObjectStore<>(client(), "", "nodes", Node.getDefaultInstance());
    ns = "ns-" + UUID.randomUUID().toString().substring(0, 8);
  }

  private Pod pod(String name, String image) {
    return Pod.newBuilder().setApiVersion("v1").setKind("Pod")
        .setMetadata(ObjectMeta.newBuilder().setName(name).setNamespace(ns).setUid(UUID.randomUUID().toString()))
        .setSpec(PodSpec.newBuilder().addContainers(Container.newBuilder().setName("c").setImage(image)))
        .build();
  }

  @Test
  void createGetAndResourceVersionIsTheModRevision() {
    Pod created = pods.create(pod("a", "busybox"));
    assertThat(created.getMetadata().getResourceVersion()).isNotEmpty();
    Pod read = pods.get(ns, "a");
    assertThat(read).isEqualTo(created);
    assertThat(Long.parseLong(read.getMetadata().getResourceVersion())).isPositive();
  }

  @Test
  void createOfAnExistingNameFailsWithAlreadyExists() {
    pods.create(pod("dup", "one"));
    assertThatThrownBy(() -> pods.create(pod("dup", "two")))
        .isInstanceOfSatisfying(ApiException.class, e -> {
          assertThat(e.code()).isEqualTo(409);
          assertThat(e.reason()).isEqualTo("AlreadyExists");
          assertThat(e.getMessage()).isEqualTo("pods \"dup\" already exists");
        });
    assertThat(pods.get(ns, "dup").getSpec().getContainers(0).getImage()).isEqualTo("one");
  }

  @Test
  void staleUpdateFailsWithConflictAndLosesNothing() {
    Pod v1 = pods.create(pod("u", "v1"));
    Pod v2 = pods.update(v1.toBuilder().setSpec(v1.getSpec().toBuilder().setNodeName("n1")).build());
    assertThat(Long.parseLong(v2.getMetadata().getResourceVersion()))
        .isGreaterThan(Long.parseLong(v1.getMetadata().getResourceVersion()));
    assertThatThrownBy(() -> pods.update(v1.toBuilder().setSpec(v1.getSpec().toBuilder().setNodeName("n2")).build()))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.reason()).isEqualTo("Conflict"));
    assertThat(pods.get(ns, "u").getSpec().getNodeName()).isEqualTo("n1");
    assertThatThrownBy(() -> pods.update(pod("missing", "x")))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.code()).isEqualTo(404));
  }

  @Test
  void concurrentUpdatersOfOneVersionExactlyOneWins() throws Exception {
    Pod base = pods.create(pod("race", "v"));
    int writers = 8;
    AtomicInteger wins = new AtomicInteger();
    AtomicInteger conflicts = new AtomicInteger();
    CountDownLatch go = new CountDownLatch(1);
    List<Thread> threads = new ArrayList<>();
    for (int i = 0; i < writers; i++) {
      String node = "node-" + i;
      Thread t = new Thread(() -> {
        try {
          go.await();
          pods.update(base.toBuilder().setSpec(base.getSpec().toBuilder().setNodeName(node)).build());
          wins.incrementAndGet();
        } catch (ApiException e) {
          if (e.reason().equals("Conflict")) {
            conflicts.incrementAndGet();
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
    assertThat(wins.get()).isEqualTo(1);
    assertThat(conflicts.get()).isEqualTo(writers - 1);
    assertThat(pods.get(ns, "race").getSpec().getNodeName()).startsWith("node-");
  }

  @Test
  void deleteWithPreconditionsAndNotFound() {
    Pod p = pods.create(pod("d", "x"));
    Pod updated = pods.update(p.toBuilder().setSpec(p.getSpec().toBuilder().setNodeName("n")).build());
    assertThatThrownBy(() -> pods.delete(ns, "d", p.getMetadata().getResourceVersion()))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.reason()).isEqualTo("Conflict"));
    Pod deleted = pods.delete(ns, "d", updated.getMetadata().getResourceVersion());
    assertThat(deleted.getSpec().getNodeName()).isEqualTo("n");
    assertThatThrownBy(() -> pods.get(ns, "d"))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.getMessage()).isEqualTo("pods \"d\" not found"));
    assertThatThrownBy(() -> pods.delete(ns, "d", ""))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.code()).isEqualTo(404));
  }

  @Test
  void paginatedListIsASnapshotAtTheFirstPagesRevision() {
    for (int i = 0; i < 7; i++) {
      pods.create(pod("p" + i, "x"));
    }
    ObjectStore.Page<Pod> first = pods.list(ns, 3, "");
    assertThat(first.items()).extracting(p -> p.getMetadata().getName()).containsExactly("p0", "p1", "p2");
    assertThat(first.continueToken()).isNotEmpty();
    // writes after the first page do not show in the rest of this list
    pods.create(pod("p3a", "late"));
    pods.delete(ns, "p5", "");
    List<String> names = new ArrayList<>();
    first.items().forEach(p -> names.add(p.getMetadata().getName()));
    String token = first.continueToken();
    while (!token.isEmpty()) {
      ObjectStore.Page<Pod> page = pods.list(ns, 3, token);
      assertThat(page.revision()).isEqualTo(first.revision());
      page.items().forEach(p -> names.add(p.getMetadata().getName()));
      token = page.continueToken();
    }
    assertThat(names).containsExactly("p0", "p1", "p2", "p3", "p4", "p5", "p6");
    assertThat(pods.list(ns, 0, "").items()).extracting(p -> p.getMetadata().getName())
        .containsExactly("p0", "p1", "p2", "p3", "p3a", "p4", "p6");
    assertThatThrownBy(() -> pods.list(ns, 3, "not-a-token"))
        .isInstanceOfSatisfying(ApiException.class, e -> assertThat(e.code()).isEqualTo(400));
  }

  @Test
  void clusterScopedKindsHaveNoNamespaceSegment() {
    String name = "node-" + UUID.randomUUID().toString().substring(0, 6);
    assertThat(nodes.key("", name)).isEqualTo("/registry/core/nodes/" + name);
    assertThat(pods.key("default", "x")).isEqualTo("/registry/core/pods/default/x");
    Node n = nodes.create(Node.newBuilder().setMetadata(ObjectMeta.newBuilder().setName(name)).build());
    assertThat(nodes.get("", name)).isEqualTo(n);
    assertThat(nodes.list("", 0, "").items()).extracting(x -> x.getMetadata().getName()).contains(name);
  }
}
