package io.capstan.e2e;

import static org.awaitility.Awaitility.await;
import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.io.IOException;
import java.net.HttpURLConnection;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The stock kubectl against an api-server process over a kvstore process, both from the distribution. */
class KubectlTest {
  private static DistCluster kvstore;
  private static Process apiServer;
  private static Path dir;
  private static Path kubeconfig;
  private static int httpPort;

  @BeforeAll
  static void start() throws Exception {
    kvstore = new DistCluster(1).start();
    dir = kvstore.root();
    httpPort = DistCluster.freePort();
    apiServer = new ProcessBuilder(kvstore.bin().toString(), "api-server", "--kvstore-endpoints", "http://" + kvstore.endpoint(0),
        "--grpc-port", String.valueOf(DistCluster.freePort()), "--http-port", String.valueOf(httpPort))
        .redirectErrorStream(true).redirectOutput(dir.resolve("api-server.log").toFile()).start();
    await("api-server ready").atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(50)).until(() -> {
      assertThat(apiServer.isAlive()).as(Files.readString(dir.resolve("api-server.log"))).isTrue();
      return ready();
    });
    kubeconfig = dir.resolve("kubeconfig");
    Files.writeString(kubeconfig, """
        apiVersion: v1
        kind: Config
        clusters:
        - cluster: {server: "http://127.0.0.1:%d"}
          name: capstan
        contexts:
        - context: {cluster: capstan, user: me}
          name: capstan
        current-context: capstan
        users:
        - name: me
          user: {}
        """.formatted(httpPort));
  }

  @AfterAll
  static void stop() throws Exception {
    if (apiServer != null) {
      apiServer.destroyForcibly();
      apiServer.waitFor(10, TimeUnit.SECONDS);
    }
    if (kvstore != null) {
      kvstore.close();
    }
  }

  private static boolean ready() {
    try {
      HttpURLConnection c = (HttpURLConnection) URI.create("http://127.0.0.1:" + httpPort + "/readyz").toURL().openConnection();
      c.setConnectTimeout(500);
      return c.getResponseCode() == 200;
    } catch (IOException e) {
      return false;
    }
  }

  record Out(int code, String text) {}

  private static Out kubectl(String... args) throws Exception {
    // --cache-dir: discovery cached by an earlier run (in ~/.kube/cache) must not answer for this server
    List<String> cmd = new ArrayList<>(List.of("kubectl", "--kubeconfig", kubeconfig.toString(), "--cache-dir",
        dir.resolve("kube-cache").toString(), "--request-timeout=20s"));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    return new Out(p.exitValue(), out);
  }

  private static Path manifest(String name, String yaml) throws IOException {
    return Files.writeString(dir.resolve(name), yaml);
  }

  @Test
  void getCreateApplyDeleteAndErrors() throws Exception {
    assertThat(kubectl("version").text()).contains("Server Version: v1.32");
    assertThat(kubectl("get", "namespaces").text()).contains("default").contains("kube-system");
    Path pod = manifest("pod.yaml", """
        apiVersion: v1
        kind: Pod
        metadata: {name: web, labels: {app: web}}
        spec:
          containers:
          - {name: c, image: "nginx:1.27", ports: [{containerPort: 80}]}
        """);
    // validation on: kubectl reads the server's OpenAPI v3 document
    Out created = kubectl("create", "-f", pod.toString());
    assertThat(created.code()).as(created.text()).isZero();
    assertThat(created.text()).contains("pod/web created");
    Out pods = kubectl("get", "pods");
    assertThat(pods.text()).contains("web").containsPattern("NAME\\s+READY\\s+STATUS\\s+RESTARTS\\s+AGE")
        .containsPattern("web\\s+0/1\\s+Pending\\s+0");
    Out yaml = kubectl("get", "pod", "web", "-o", "yaml");
    assertThat(yaml.text()).contains("restartPolicy: Always", "terminationGracePeriodSeconds: 30", "resourceVersion:", "containerPort: 80");
    assertThat(kubectl("get", "pods", "-l", "app=web", "-o", "json").text()).contains("\"name\": \"web\"");
    assertThat(kubectl("get", "pods", "-l", "app=db").text()).contains("No resources found");
    Out dup = kubectl("create", "-f", pod.toString());
    assertThat(dup.code()).isNotZero();
    assertThat(dup.text()).contains("AlreadyExists").contains("pods \"web\" already exists");
    Out missing = kubectl("get", "pod", "nope");
    assertThat(missing.text()).contains("NotFound").contains("pods \"nope\" not found");

    Path deploy = manifest("deploy.yaml", """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 2
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers: [{name: c, image: "nginx:1.27", ports: [{containerPort: 80}], env: [{name: A, value: "1"}]}]
        """);
    Out applied = kubectl("apply", "-f", deploy.toString(), "--validate=false");
    assertThat(applied.text()).contains("deployment.apps/web created");
    assertThat(kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.strategy.rollingUpdate.maxSurge}").text()).isEqualTo("25%");

    // Applying a changed manifest sends a strategic merge patch computed against the last applied
    // configuration: the container merges by name, so its ports and env survive an image change.
    Files.writeString(deploy, Files.readString(deploy).replace("nginx:1.27", "nginx:1.28").replace("replicas: 2", "replicas: 4"));
    Out reapplied = kubectl("apply", "-f", deploy.toString(), "--validate=false");
    assertThat(reapplied.code()).as(reapplied.text()).isZero();
    assertThat(reapplied.text()).contains("deployment.apps/web configured");
    assertThat(kubectl("get", "deployment", "web", "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}"
            + " {.spec.template.spec.containers[0].env[0].name} {.metadata.generation}").text())
        .isEqualTo("4 nginx:1.28 80 A 2");
    assertThat(kubectl("apply", "-f", deploy.toString(), "--validate=false").text()).contains("deployment.apps/web unchanged");
    Out patched = kubectl("patch", "deployment", "web", "-p", "{\"spec\":{\"template\":{\"spec\":{\"containers\":"
        + "[{\"name\":\"c\",\"env\":[{\"name\":\"B\",\"value\":\"2\"}]}]}}}}");
    assertThat(patched.text()).contains("deployment.apps/web patched");
    assertThat(kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].env[*].name}").text())
        .isEqualTo("A B");
    Out jsonPatched = kubectl("patch", "deployment", "web", "--type=json", "-p", "[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":1}]");
    assertThat(jsonPatched.code()).as(jsonPatched.text()).isZero();
    assertThat(kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}").text()).isEqualTo("1");

    // kubectl scale: a merge patch to the /scale subresource, or with a precondition GET + PUT of the Scale.
    assertThat(kubectl("scale", "deployment", "web", "--replicas=3").text()).contains("deployment.apps/web scaled");
    assertThat(kubectl("scale", "deployment", "web", "--replicas=5", "--current-replicas=3").text()).contains("scaled");
    Out stale = kubectl("scale", "deployment", "web", "--replicas=2", "--current-replicas=3");
    assertThat(stale.code()).isNotZero();
    assertThat(stale.text()).contains("Expected replicas to be 3, was 5");
    // Tables: the columns kubectl users know, wide ones with -o wide.
    assertThat(kubectl("get", "deployments").text()).contains("READY", "UP-TO-DATE", "AVAILABLE").contains("0/5");
    assertThat(kubectl("get", "deployment", "web", "-o", "wide").text()).contains("IMAGES", "nginx:1.28", "app=web");

    Path bad = manifest("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Pod}\nspec: {containers: [{name: c}]}\n");
    Out invalid = kubectl("create", "-f", bad.toString());
    assertThat(invalid.code()).isNotZero();
    assertThat(invalid.text()).contains("is invalid").contains("metadata.name").contains("spec.containers[0].image: Required value");

    // Server-side apply: creates, then merges what the configuration names.
    Path ssa = manifest("ssa.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, labels: {a: '1'}}\ndata: {k: v}\n");
    Out ssaCreated = kubectl("apply", "--server-side", "-f", ssa.toString());
    assertThat(ssaCreated.code()).as(ssaCreated.text()).isZero();
    assertThat(ssaCreated.text()).contains("configmap/ssa serverside-applied");
    Files.writeString(ssa, Files.readString(ssa).replace("k: v", "k: w, k2: x"));
    assertThat(kubectl("apply", "--server-side", "-f", ssa.toString()).code()).isZero();
    assertThat(kubectl("get", "configmap", "ssa", "-o", "jsonpath={.data.k} {.data.k2} {.metadata.labels.a}").text()).isEqualTo("w x 1");

    // kubectl asks the server to validate fields (?fieldValidation=Strict): a typo is an error,
    // a warning with --validate=warn.
    Path typo = manifest("typo.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: typo}\n"
        + "spec: {containers: [{name: c, image: busybox, imagee: x}]}\n");
    Out strict = kubectl("create", "-f", typo.toString());
    assertThat(strict.code()).isNotZero();
    assertThat(strict.text()).contains("strict decoding error: unknown field \"spec.containers[0].imagee\"");
    Out warned = kubectl("create", "-f", typo.toString(), "--validate=warn");
    assertThat(warned.code()).as(warned.text()).isZero();
    assertThat(warned.text()).contains("Warning: unknown field \"spec.containers[0].imagee\"").contains("pod/typo created");
    assertThat(kubectl("delete", "pod", "typo").code()).isZero();

    Out deleted = kubectl("delete", "pod", "web");
    assertThat(deleted.code()).as(deleted.text()).isZero();
    assertThat(kubectl("get", "pods").text()).contains("No resources found");
  }

  @Test
  void watchSeesChanges() throws Exception {
    manifest("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {k: v}\n");
    assertThat(kubectl("create", "-f", dir.resolve("cm.yaml").toString()).code()).isZero();
    Process w = new ProcessBuilder("kubectl", "--kubeconfig", kubeconfig.toString(), "--cache-dir", dir.resolve("kube-cache").toString(),
        "get", "configmaps", "-w", "-o", "name")
        .redirectErrorStream(true).start();
    StringBuffer seen = new StringBuffer();
    Thread reader = new Thread(() -> {
      try {
        byte[] buf = new byte[4096];
        int n;
        while ((n = w.getInputStream().read(buf)) > 0) {
          seen.append(new String(buf, 0, n));
        }
      } catch (IOException ignored) {
        // ended
      }
    });
    reader.setDaemon(true);
    reader.start();
    try {
      await().atMost(Duration.ofSeconds(20)).until(() -> seen.toString().contains("configmap/watched"));
      assertThat(kubectl("label", "configmap", "watched", "x=y").code()).isZero();
      manifest("cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\n");
      assertThat(kubectl("create", "-f", dir.resolve("cm2.yaml").toString()).code()).isZero();
      await().atMost(Duration.ofSeconds(20)).until(() -> seen.toString().contains("configmap/second"));
    } finally {
      w.destroyForcibly();
    }
  }
}
