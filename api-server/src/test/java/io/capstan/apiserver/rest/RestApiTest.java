package io.capstan.apiserver.rest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.capstan.apiserver.ApiServer;
import io.capstan.kvstore.testing.MiniCluster;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The REST API on Netty, driven over real HTTP as kubectl and client-go drive it: status codes and
 * Status bodies, list paging, watch streams, refusals of bad input, and HTTP/1.1 connection rules.
 */
class RestApiTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int WATCH_WINDOW = 5;
  private static MiniCluster kvstore;
  private static ApiServer server;
  private static HttpClient http;
  private static String base;

  @BeforeAll
  static void start() throws Exception {
    kvstore = MiniCluster.start(1);
    server = ApiServer.start(kvstore.endpoint(0), "127.0.0.1", 0, 0, WATCH_WINDOW);
    base = "http://127.0.0.1:" + server.httpPort();
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build();
  }

  @AfterAll
  static void stop() throws Exception {
    if (server != null) {
      server.close();
    }
    if (kvstore != null) {
      kvstore.close();
    }
  }

  record Reply(int code, JsonNode body, String contentType) {}

  private static Reply call(String method, String path, String contentType, byte[] body) throws Exception {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(20))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofByteArray(body));
    if (contentType != null) {
      b.header("Content-Type", contentType);
    }
    HttpResponse<byte[]> r = http.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
    String type = r.headers().firstValue("Content-Type").orElse("");
    JsonNode json = r.body().length == 0 || !type.startsWith("application/json") ? null : JSON.readTree(r.body());
    return new Reply(r.statusCode(), json, type);
  }

  private static Reply get(String path) throws Exception {
    return call("GET", path, null, null);
  }

  private static Reply post(String path, String json) throws Exception {
    return call("POST", path, "application/json", json.getBytes(StandardCharsets.UTF_8));
  }

  private static String configMap(String name, String label) {
    return "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"" + name + "\",\"labels\":{\"set\":\""
        + label + "\"}},\"data\":{\"k\":\"v\"}}";
  }

  private static void assertStatus(Reply r, int code, String reason) {
    assertThat(r.code()).as(String.valueOf(r.body())).isEqualTo(code);
    assertThat(r.contentType()).startsWith("application/json");
    assertThat(r.body().path("kind").asText()).isEqualTo("Status");
    assertThat(r.body().path("status").asText()).isEqualTo("Failure");
    assertThat(r.body().path("code").asInt()).isEqualTo(code);
    assertThat(r.body().path("reason").asText()).isEqualTo(reason);
  }

  @Test
  void discoveryDocumentsDescribeTheResources() throws Exception {
    assertThat(get("/version").body().path("gitVersion").asText()).startsWith("v1.32");
    assertThat(get("/api").body().path("versions").get(0).asText()).isEqualTo("v1");
    JsonNode apps = get("/apis/apps/v1").body();
    JsonNode deployments = null;
    for (JsonNode r : apps.path("resources")) {
      if (r.path("name").asText().equals("deployments")) {
        deployments = r;
      }
    }
    assertThat(deployments).isNotNull();
    assertThat(deployments.path("namespaced").asBoolean()).isTrue();
    assertThat(deployments.path("verbs").toString()).contains("watch", "create", "delete");
    assertStatus(get("/apis/nosuch.group/v1"), 404, "NotFound");
  }

  @Test
  void createReadUpdateDeleteWithKubernetesStatusCodes() throws Exception {
    String path = "/api/v1/namespaces/default/configmaps";
    Reply created = post(path, configMap("crud", "a"));
    assertThat(created.code()).isEqualTo(201);
    String rv = created.body().path("metadata").path("resourceVersion").asText();
    assertThat(rv).isNotEmpty();
    assertStatus(post(path, configMap("crud", "a")), 409, "AlreadyExists");

    Reply got = get(path + "/crud");
    assertThat(got.code()).isEqualTo(200);
    assertThat(got.body().path("data").path("k").asText()).isEqualTo("v");

    String updated = configMap("crud", "b").replace("\"name\":\"crud\"", "\"name\":\"crud\",\"resourceVersion\":\"" + rv + "\"");
    Reply put = call("PUT", path + "/crud", "application/json", updated.getBytes(StandardCharsets.UTF_8));
    assertThat(put.code()).isEqualTo(200);
    assertThat(put.body().path("metadata").path("labels").path("set").asText()).isEqualTo("b");
    // the same version again is stale now
    Reply stale = call("PUT", path + "/crud", "application/json", updated.getBytes(StandardCharsets.UTF_8));
    assertStatus(stale, 409, "Conflict");

    Reply patched = call("PATCH", path + "/crud", "application/merge-patch+json",
        "{\"data\":{\"k2\":\"v2\"}}".getBytes(StandardCharsets.UTF_8));
    assertThat(patched.code()).isEqualTo(200);
    assertThat(patched.body().path("data").path("k2").asText()).isEqualTo("v2");
    assertStatus(call("PATCH", path + "/crud", "text/plain", "data: {}".getBytes(StandardCharsets.UTF_8)),
        415, "UnsupportedMediaType");
    assertStatus(call("PATCH", path + "/crud", "application/apply-patch+yaml", "data: {}".getBytes(StandardCharsets.UTF_8)),
        400, "BadRequest"); // server-side apply needs a fieldManager
    Reply jsonPatched = call("PATCH", path + "/crud", "application/json-patch+json",
        "[{\"op\":\"test\",\"path\":\"/data/k2\",\"value\":\"v2\"},{\"op\":\"remove\",\"path\":\"/data/k\"}]".getBytes(StandardCharsets.UTF_8));
    assertThat(jsonPatched.code()).as(String.valueOf(jsonPatched.body())).isEqualTo(200);
    assertThat(jsonPatched.body().path("data").has("k")).isFalse();

    assertThat(call("DELETE", path + "/crud", null, null).code()).isEqualTo(200);
    Reply gone = get(path + "/crud");
    assertStatus(gone, 404, "NotFound");
    assertThat(gone.body().path("details").path("name").asText()).isEqualTo("crud");
    assertThat(gone.body().path("details").path("kind").asText()).isEqualTo("configmaps");
  }

  @Test
  void invalidObjectsAndBadInputGetSpecificErrorsAndStoreNothing() throws Exception {
    String path = "/api/v1/namespaces/default/configmaps";
    Reply invalid = post(path, configMap("Not_A_Name", "a"));
    assertStatus(invalid, 422, "Invalid");
    assertThat(invalid.body().path("details").path("causes").get(0).path("field").asText()).isEqualTo("metadata.name");

    assertStatus(post(path, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"), 400, "BadRequest");
    assertStatus(post("/api/v1/namespaces/kube-system/configmaps", configMap("elsewhere", "a")
        .replace("\"name\":\"elsewhere\"", "\"name\":\"elsewhere\",\"namespace\":\"default\"")), 400, "BadRequest");
    assertStatus(post("/api/v1/namespaces/default/nosuchthings", configMap("x", "a")), 404, "NotFound");
    assertStatus(post("/api/v1/namespaces", configMap("cm-as-namespace", "a")), 400, "BadRequest");
    assertStatus(post(path + "/named", configMap("named", "a")), 405, "MethodNotAllowed");
    assertStatus(call("DELETE", path + "/x/status", null, null), 404, "NotFound");
    assertThat(get("/api/v1/namespaces/x").code()).isEqualTo(404);
    assertStatus(call("POST", path, "application/vnd.kubernetes.protobuf", new byte[] {1, 2, 3}), 415, "UnsupportedMediaType");
    assertStatus(post("/api/v1/namespaces/missing/configmaps", configMap("orphan", "a")), 404, "NotFound");
    String typo = configMap("typo", "a").replace("\"data\"", "\"dat\"");
    Reply strict = post(path + "?fieldValidation=Strict", typo);
    assertStatus(strict, 400, "BadRequest");
    assertThat(strict.body().path("message").asText()).contains("strict decoding error: unknown field \"dat\"");
    assertStatus(post(path + "?fieldValidation=Loose", configMap("typo", "a")), 400, "BadRequest");

    // A body over the limit is refused before it is parsed, and the server goes on serving.
    String big = configMap("huge", "a").replace("\"k\":\"v\"", "\"k\":\"" + "x".repeat(RestHandler.MAX_BODY) + "\"");
    assertStatus(post(path, big), 413, "RequestEntityTooLarge");
    // Under the HTTP limit but over Kubernetes' 1.5 MiB object limit: refused by the store.
    String large = configMap("large", "a").replace("\"k\":\"v\"", "\"k\":\"" + "x".repeat(2 * 1024 * 1024) + "\"");
    Reply tooLarge = post(path, large);
    assertThat(tooLarge.code()).as(String.valueOf(tooLarge.body())).isBetween(400, 499);
    assertThat(tooLarge.body().path("kind").asText()).isEqualTo("Status");

    for (String name : List.of("Not_A_Name", "elsewhere", "huge", "large", "named", "typo")) {
      assertStatus(get(path + "/" + name), 404, "NotFound");
    }
    assertThat(get("/healthz").code()).isEqualTo(200);
  }

  @Test
  void listsPageWithLimitAndContinue() throws Exception {
    String path = "/api/v1/namespaces/default/configmaps";
    for (int i = 0; i < 5; i++) {
      assertThat(post(path, configMap("page-" + i, "paged")).code()).isEqualTo(201);
    }
    Set<String> seen = new HashSet<>();
    String cont = "";
    int pages = 0;
    do {
      Reply r = get(path + "?labelSelector=set%3Dpaged&limit=2" + (cont.isEmpty() ? "" : "&continue=" + cont));
      assertThat(r.code()).isEqualTo(200);
      assertThat(r.body().path("kind").asText()).isEqualTo("ConfigMapList");
      assertThat(r.body().path("items").size()).isLessThanOrEqualTo(2);
      r.body().path("items").forEach(i -> assertThat(seen.add(i.path("metadata").path("name").asText())).isTrue());
      cont = r.body().path("metadata").path("continue").asText("");
      pages++;
    } while (!cont.isEmpty());
    assertThat(seen).containsExactlyInAnyOrder("page-0", "page-1", "page-2", "page-3", "page-4");
    assertThat(pages).isEqualTo(3);
    Reply one = get(path + "?fieldSelector=metadata.name%3Dpage-3");
    assertThat(one.body().path("items").size()).isEqualTo(1);
    assertStatus(get(path + "?labelSelector=%3D%3D%3D"), 400, "BadRequest");
  }

  /** Opens a watch and returns its lines as they arrive; the future completes when the server ends the stream. */
  private static CompletableFuture<HttpResponse<Stream<String>>> watch(String query, BlockingQueue<JsonNode> events) {
    HttpRequest req = HttpRequest.newBuilder(URI.create(base + "/api/v1/namespaces/default/configmaps?watch=true&" + query)).build();
    return http.sendAsync(req, HttpResponse.BodyHandlers.ofLines()).thenApply(r -> {
      r.body().forEach(line -> {
        try {
          events.add(JSON.readTree(line));
        } catch (java.io.IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      });
      return r;
    });
  }

  private static JsonNode next(BlockingQueue<JsonNode> events) throws InterruptedException {
    JsonNode e = events.poll(20, TimeUnit.SECONDS);
    assertThat(e).as("a watch event within 20 s").isNotNull();
    return e;
  }

  @Test
  void watchStreamsEventsInOrderFromAVersion() throws Exception {
    String path = "/api/v1/namespaces/default/configmaps";
    String from = get(path).body().path("metadata").path("resourceVersion").asText();
    BlockingQueue<JsonNode> events = new LinkedBlockingQueue<>();
    CompletableFuture<HttpResponse<Stream<String>>> w = watch("labelSelector=set%3Dwatched&resourceVersion=" + from, events);
    try {
      Reply created = post(path, configMap("watched", "watched"));
      String rv = created.body().path("metadata").path("resourceVersion").asText();
      call("PATCH", path + "/watched", "application/merge-patch+json", "{\"data\":{\"k\":\"w\"}}".getBytes(StandardCharsets.UTF_8));
      post(path, configMap("unwatched", "other"));
      call("DELETE", path + "/watched", null, null);
      JsonNode added = next(events);
      assertThat(added.path("type").asText()).isEqualTo("ADDED");
      assertThat(added.path("object").path("metadata").path("resourceVersion").asText()).isEqualTo(rv);
      JsonNode modified = next(events);
      assertThat(modified.path("type").asText()).isEqualTo("MODIFIED");
      assertThat(modified.path("object").path("data").path("k").asText()).isEqualTo("w");
      JsonNode deleted = next(events);
      assertThat(deleted.path("type").asText()).isEqualTo("DELETED");
      assertThat(deleted.path("object").path("metadata").path("name").asText()).isEqualTo("watched");
      assertThat(events).isEmpty();
    } finally {
      w.cancel(true);
    }
  }

  @Test
  void watchEndsAfterItsTimeoutAndTooOldVersionsGetAnExpiredErrorEvent() throws Exception {
    BlockingQueue<JsonNode> events = new LinkedBlockingQueue<>();
    HttpResponse<Stream<String>> ended = watch("timeoutSeconds=1&labelSelector=set%3Dnone", events).get(20, TimeUnit.SECONDS);
    assertThat(ended.statusCode()).isEqualTo(200);
    assertThat(events).isEmpty();

    String path = "/api/v1/namespaces/default/configmaps";
    for (int i = 0; i < WATCH_WINDOW + 2; i++) {
      post(path, configMap("churn-" + i, "churn"));
    }
    HttpResponse<Stream<String>> expired = watch("resourceVersion=1", events).get(20, TimeUnit.SECONDS);
    assertThat(expired.statusCode()).isEqualTo(200);
    JsonNode error = next(events);
    assertThat(error.path("type").asText()).isEqualTo("ERROR");
    assertThat(error.path("object").path("code").asInt()).isEqualTo(410);
    assertThat(error.path("object").path("reason").asText()).isEqualTo("Expired");
  }

  @Test
  void pipelinedRequestsOnOneConnectionAreAnsweredInOrder() throws Exception {
    try (Socket s = new Socket("127.0.0.1", server.httpPort())) {
      s.setSoTimeout(20_000);
      OutputStream out = s.getOutputStream();
      // A slow request (through the kvstore) first, then a fast one, in one write.
      String requests = "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          + "Content-Length: " + configMap("pipelined", "p").length() + "\r\n\r\n" + configMap("pipelined", "p")
          + "GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
          + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      out.write(requests.getBytes(StandardCharsets.UTF_8));
      out.flush();
      String all = new String(readAll(s.getInputStream()), StandardCharsets.UTF_8);
      int first = all.indexOf("HTTP/1.1 201");
      int second = all.indexOf("\"gitVersion\"");
      int third = all.lastIndexOf("HTTP/1.1 200");
      assertThat(first).as(all).isGreaterThanOrEqualTo(0);
      assertThat(second).as(all).isGreaterThan(first);
      assertThat(third).as(all).isGreaterThan(second);
      assertThat(all).endsWith("ok\n");
    }
  }

  @Test
  void malformedHttpIsRefusedWith400AndTheServerGoesOn() throws Exception {
    try (Socket s = new Socket("127.0.0.1", server.httpPort())) {
      s.setSoTimeout(20_000);
      s.getOutputStream().write("GET /version HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n".getBytes(StandardCharsets.UTF_8));
      String reply = new String(readAll(s.getInputStream()), StandardCharsets.UTF_8);
      assertThat(reply).startsWith("HTTP/1.1 400").contains("\"kind\":\"Status\"");
    }
    assertThat(get("/version").code()).isEqualTo(200);
  }

  @Test
  void adminEndpointsShareThePortAndCountRequests() throws Exception {
    HttpResponse<String> head = http.send(HttpRequest.newBuilder(URI.create(base + "/healthz"))
        .method("HEAD", HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
    assertThat(head.statusCode()).isEqualTo(200);
    assertThat(head.body()).isEmpty();
    get("/version");
    await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
      String metrics = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).build(),
          HttpResponse.BodyHandlers.ofString()).body();
      assertThat(metrics).contains("http_requests_get").contains("http_responses_200");
    });
  }

  /** A minimal valid manifest of every kind, in YAML: the test fails if a kind is registered without one. */
  private static final java.util.Map<String, String> MANIFESTS = java.util.Map.of(
      "Namespace", "apiVersion: v1\nkind: Namespace\nmetadata: {name: every-kind}\n",
      "Node", "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nstatus: {capacity: {cpu: \"2\", memory: 4Gi}}\n",
      "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}\n",
      "Service", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {app: a}, ports: [{port: 80}]}\n",
      "Endpoints", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: s}\nsubsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: 80}]}]\n",
      "ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n",
      "Event", "apiVersion: v1\nkind: Event\nmetadata: {name: e}\ninvolvedObject: {kind: Pod, name: p}\nreason: Tested\nmessage: hello\n",
      "ReplicaSet", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: rs}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: rs}}\n"
          + "  template:\n    metadata: {labels: {app: rs}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
      "Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n"
          + "  template:\n    metadata: {labels: {app: d}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
      "Lease", "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: l}\nspec: {holderIdentity: me, leaseDurationSeconds: 15}\n");

  @Test
  void everyKindCanBeCreatedReadListedUpdatedAndDeletedInYamlAndJson() throws Exception {
    io.capstan.apiserver.registry.Registry registry = io.capstan.apiserver.registry.Registry.builtIn();
    assertThat(MANIFESTS.keySet()).containsExactlyInAnyOrderElementsOf(
        registry.all().stream().map(io.capstan.apiserver.registry.ResourceType::kind).toList());
    for (io.capstan.apiserver.registry.ResourceType t : registry.all()) {
      String collection = (t.group().isEmpty() ? "/api/" : "/apis/" + t.group() + "/") + t.version()
          + (t.namespaced() ? "/namespaces/default/" : "/") + t.resource();
      Reply created = call("POST", collection, "application/yaml", MANIFESTS.get(t.kind()).getBytes(StandardCharsets.UTF_8));
      assertThat(created.code()).as(t.kind() + ": " + created.body()).isEqualTo(201);
      String name = created.body().path("metadata").path("name").asText();
      assertThat(created.body().path("kind").asText()).isEqualTo(t.kind());
      assertThat(created.body().path("metadata").path("uid").asText()).isNotEmpty();

      HttpResponse<String> yaml = http.send(HttpRequest.newBuilder(URI.create(base + collection + "/" + name))
          .header("Accept", "application/yaml").build(), HttpResponse.BodyHandlers.ofString());
      assertThat(yaml.statusCode()).isEqualTo(200);
      assertThat(yaml.headers().firstValue("Content-Type")).hasValue("application/yaml");
      assertThat(yaml.body()).as(t.kind()).contains("kind: " + t.kind()).contains("name: " + name).doesNotStartWith("{");

      Reply list = get(collection);
      assertThat(list.body().path("kind").asText()).isEqualTo(t.kind() + "List");
      assertThat(list.body().path("items").findValuesAsText("name")).as(t.kind()).contains(name);

      com.fasterxml.jackson.databind.node.ObjectNode changed = (com.fasterxml.jackson.databind.node.ObjectNode) get(collection + "/" + name).body();
      ((com.fasterxml.jackson.databind.node.ObjectNode) changed.path("metadata")).putObject("labels").put("changed", "yes");
      Reply updated = call("PUT", collection + "/" + name, "application/json", JSON.writeValueAsBytes(changed));
      assertThat(updated.code()).as(t.kind() + ": " + updated.body()).isEqualTo(200);
      assertThat(updated.body().path("metadata").path("labels").path("changed").asText()).isEqualTo("yes");
      assertThat(updated.body().path("metadata").path("generation").asLong()).as("a label change is not a new generation")
          .isEqualTo(created.body().path("metadata").path("generation").asLong());

      Reply deleted = call("DELETE", collection + "/" + name, null, null);
      assertThat(deleted.code()).as(t.kind() + ": " + deleted.body()).isIn(200, 202);
      if (!t.kind().equals("Namespace")) { // a namespace stays Terminating until its contents are gone
        assertStatus(get(collection + "/" + name), 404, "NotFound");
      }
    }
    assertStatus(call("POST", "/api/v1/namespaces/default/configmaps", "application/yaml",
        "metadata: {name: [unclosed\n".getBytes(StandardCharsets.UTF_8)), 400, "BadRequest");
  }

  @Test
  void tablesAndTheScaleSubresource() throws Exception {
    String deployments = "/apis/apps/v1/namespaces/default/deployments";
    assertThat(call("POST", deployments, "application/yaml", MANIFESTS.get("Deployment").replace("name: d}", "name: scaled}")
        .getBytes(StandardCharsets.UTF_8)).code()).isEqualTo(201);
    HttpResponse<byte[]> t = http.send(HttpRequest.newBuilder(URI.create(base + deployments))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json").build(), HttpResponse.BodyHandlers.ofByteArray());
    JsonNode table = JSON.readTree(t.body());
    assertThat(table.path("kind").asText()).isEqualTo("Table");
    assertThat(table.path("columnDefinitions").findValuesAsText("name")).startsWith("Name", "Ready", "Up-to-date", "Available", "Age");
    JsonNode row = null;
    for (JsonNode r : table.path("rows")) {
      if (r.path("object").path("metadata").path("name").asText().equals("scaled")) {
        row = r;
      }
    }
    assertThat(row).isNotNull();
    assertThat(row.path("cells").get(1).asText()).isEqualTo("0/1");
    assertThat(row.path("object").path("kind").asText()).isEqualTo("PartialObjectMetadata");

    Reply scale = get(deployments + "/scaled/scale");
    assertThat(scale.body().path("kind").asText()).isEqualTo("Scale");
    assertThat(scale.body().path("apiVersion").asText()).isEqualTo("autoscaling/v1");
    assertThat(scale.body().path("spec").path("replicas").asInt()).isEqualTo(1);
    assertThat(scale.body().path("status").path("selector").asText()).isEqualTo("app=d");
    Reply patched = call("PATCH", deployments + "/scaled/scale", "application/merge-patch+json",
        "{\"spec\":{\"replicas\":4}}".getBytes(StandardCharsets.UTF_8));
    assertThat(patched.body().path("spec").path("replicas").asInt()).isEqualTo(4);
    assertThat(get(deployments + "/scaled").body().path("spec").path("replicas").asInt()).isEqualTo(4);
    com.fasterxml.jackson.databind.node.ObjectNode stale = scale.body().deepCopy();
    ((com.fasterxml.jackson.databind.node.ObjectNode) stale.path("spec")).put("replicas", 2);
    assertStatus(call("PUT", deployments + "/scaled/scale", "application/json", JSON.writeValueAsBytes(stale)), 409, "Conflict");
    assertStatus(call("PATCH", deployments + "/scaled/scale", "application/merge-patch+json",
        "{\"spec\":{\"replicas\":-1}}".getBytes(StandardCharsets.UTF_8)), 422, "Invalid");
    assertStatus(get("/api/v1/namespaces/default/configmaps/x/scale"), 404, "NotFound");
  }

  @Test
  void updatesKeepServerFieldsCountGenerationsAndRefuseImmutableChanges() throws Exception {
    String deployments = "/apis/apps/v1/namespaces/default/deployments";
    Reply created = call("POST", deployments, "application/yaml", MANIFESTS.get("Deployment").replace("name: d}", "name: gen}")
        .getBytes(StandardCharsets.UTF_8));
    assertThat(created.code()).isEqualTo(201);
    JsonNode meta = created.body().path("metadata");
    assertThat(meta.path("generation").asLong()).isEqualTo(1);

    // A PUT without uid or creationTimestamp keeps them; a spec change is generation 2.
    com.fasterxml.jackson.databind.node.ObjectNode body = created.body().deepCopy();
    ((com.fasterxml.jackson.databind.node.ObjectNode) body.path("metadata")).remove(List.of("uid", "creationTimestamp", "generation"));
    ((com.fasterxml.jackson.databind.node.ObjectNode) body.path("spec")).put("replicas", 3);
    Reply scaled = call("PUT", deployments + "/gen", "application/json", JSON.writeValueAsBytes(body));
    assertThat(scaled.code()).as(String.valueOf(scaled.body())).isEqualTo(200);
    assertThat(scaled.body().path("metadata").path("uid").asText()).isEqualTo(meta.path("uid").asText());
    assertThat(scaled.body().path("metadata").path("creationTimestamp").asText()).isEqualTo(meta.path("creationTimestamp").asText());
    assertThat(scaled.body().path("metadata").path("generation").asLong()).isEqualTo(2);

    Reply selector = call("PATCH", deployments + "/gen", "application/merge-patch+json",
        "{\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"other\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"other\"}}}}}"
            .getBytes(StandardCharsets.UTF_8));
    assertStatus(selector, 422, "Invalid");
    assertThat(selector.body().path("details").path("causes").get(0).path("field").asText()).isEqualTo("spec.selector");

    String pods = "/api/v1/namespaces/default/pods";
    assertThat(call("POST", pods, "application/yaml", MANIFESTS.get("Pod").replace("name: p}", "name: immutable}")
        .getBytes(StandardCharsets.UTF_8)).code()).isEqualTo(201);
    Reply image = call("PATCH", pods + "/immutable", "application/merge-patch+json",
        "{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox:1.36\"}]}}".getBytes(StandardCharsets.UTF_8));
    assertThat(image.code()).as(String.valueOf(image.body())).isEqualTo(200);
    Reply policy = call("PATCH", pods + "/immutable", "application/merge-patch+json",
        "{\"spec\":{\"restartPolicy\":\"Never\"}}".getBytes(StandardCharsets.UTF_8));
    assertStatus(policy, 422, "Invalid");
    assertThat(policy.body().path("details").path("causes").get(0).path("reason").asText()).isEqualTo("FieldValueForbidden");
    assertThat(get(pods + "/immutable").body().path("spec").path("restartPolicy").asText()).isEqualTo("Always");
  }

  private static byte[] readAll(InputStream in) throws java.io.IOException {
    return in.readAllBytes();
  }
}
