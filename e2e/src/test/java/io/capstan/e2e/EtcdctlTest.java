package io.capstan.e2e;

import static org.awaitility.Awaitility.await;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The stock etcdctl 3.4 against a 3-member kvstore started from the built distribution. */
class EtcdctlTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static DistCluster cluster;
  private static Etcdctl etcdctl;

  @BeforeAll
  static void start() {
    cluster = new DistCluster(3);
    try {
      cluster.start();
    } catch (RuntimeException | Error e) {
      cluster.close();
      throw e;
    }
    etcdctl = new Etcdctl(cluster.endpoints());
  }

  @AfterAll
  static void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private static JsonNode json(String s) throws Exception {
    return JSON.readTree(s);
  }

  private static String b64(JsonNode n) {
    return new String(Base64.getDecoder().decode(n.asText()), StandardCharsets.UTF_8);
  }

  @Test
  void putGetWithPrefixLimitRevisionAndSort() throws Exception {
    assertThat(etcdctl.run("put", "pg/a", "1").ok().out()).isEqualTo("OK\n");
    long rev = json(etcdctl.run("put", "pg/b", "2", "-w", "json").ok().out()).at("/header/revision").asLong();
    etcdctl.run("put", "pg/c", "3").ok();
    etcdctl.run("put", "pg/a", "1b").ok();

    assertThat(etcdctl.run("get", "pg/a").ok().out()).isEqualTo("pg/a\n1b\n");
    assertThat(etcdctl.run("get", "pg/", "--prefix", "--keys-only").ok().out()).isEqualTo("pg/a\n\npg/b\n\npg/c\n\n");
    JsonNode limited = json(etcdctl.run("get", "pg/", "--prefix", "--limit=2", "-w", "json").ok().out());
    assertThat(limited.get("kvs")).hasSize(2);
    assertThat(limited.get("count").asLong()).isEqualTo(3);
    assertThat(limited.get("more").asBoolean()).isTrue();
    assertThat(etcdctl.run("get", "pg/a", "--rev=" + rev).ok().out()).isEqualTo("pg/a\n1\n");
    assertThat(etcdctl.run("get", "pg/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--keys-only").ok().out())
        .isEqualTo("pg/a\n\npg/c\n\npg/b\n\n");
    JsonNode one = json(etcdctl.run("get", "pg/a", "-w", "json").ok().out()).at("/kvs/0");
    assertThat(b64(one.get("key"))).isEqualTo("pg/a");
    assertThat(one.get("version").asLong()).isEqualTo(2);
    assertThat(one.get("mod_revision").asLong()).isGreaterThan(one.get("create_revision").asLong());

    assertThat(etcdctl.run("del", "pg/a").ok().out()).isEqualTo("1\n");
    assertThat(etcdctl.run("del", "pg/", "--prefix").ok().out()).isEqualTo("2\n");
    assertThat(etcdctl.run("get", "pg/", "--prefix").ok().out()).isEmpty();
  }

  @Test
  void txnTakesTheRightBranch() {
    etcdctl.run("put", "tx/k", "v1").ok();
    String success = "value(\"tx/k\") = \"v1\"\nversion(\"tx/k\") = \"1\"\n\nput tx/k v2\nput tx/other o\n\nget tx/k\n\n";
    assertThat(etcdctl.runWithInput(success, "txn").ok().out()).isEqualTo("SUCCESS\n\nOK\n\nOK\n");
    String failure = "mod(\"tx/k\") < \"2\"\n\nput tx/k never\n\nget tx/k\n\n";
    assertThat(etcdctl.runWithInput(failure, "txn").ok().out()).isEqualTo("FAILURE\n\ntx/k\nv2\n");
    String create = "create(\"tx/new\") = \"0\"\n\nput tx/new created\n\n\n";
    assertThat(etcdctl.runWithInput(create, "txn").ok().out()).startsWith("SUCCESS");
    assertThat(etcdctl.run("get", "tx/new", "--print-value-only").ok().out()).isEqualTo("created\n");
  }

  @Test
  void watchStreamsNewEventsAndReplaysHistory() {
    long start = Long.parseLong(etcdctl.run("put", "wa/x", "0", "-w", "json").ok().out().replaceAll("(?s).*\"revision\":(\\d+).*", "$1"));
    etcdctl.run("put", "wa/y", "1").ok();
    etcdctl.run("del", "wa/x").ok();
    try (Etcdctl.Background replay = etcdctl.start("watch", "--rev=" + start, "--prefix", "wa/")) {
      replay.await("DELETE\nwa/x\n", 20_000);
      assertThat(replay.output()).startsWith("PUT\nwa/x\n0\nPUT\nwa/y\n1\nDELETE\nwa/x\n");
    }
    try (Etcdctl.Background live = etcdctl.start("watch", "--prefix", "wl/", "--prev-kv")) {
      // the watch is registered once its first event arrives: keep writing until it shows
      int[] i = {0};
      await("the live watch sees a put").atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(50)).until(() -> {
        etcdctl.run("put", "wl/k", "v" + i[0]++).ok();
        return live.output().contains("PUT\nwl/k\n");
      });
      etcdctl.run("put", "wl/k", "last").ok();
      live.await("wl/k\nlast\n", 20_000);
      assertThat(live.output()).contains("PUT\nwl/k\n");
    }
  }

  @Test
  void leasesGrantAttachKeepAliveTimeToLiveListAndExpire() {
    String granted = etcdctl.run("lease", "grant", "60").ok().out();
    Matcher m = Pattern.compile("lease ([0-9a-f]+) granted with TTL\\(60s\\)").matcher(granted);
    assertThat(m.find()).as(granted).isTrue();
    String id = m.group(1);
    etcdctl.run("put", "--lease=" + id, "ls/k", "v").ok();
    assertThat(etcdctl.run("lease", "keep-alive", "--once", id).ok().out()).contains("lease " + id + " keepalived with TTL(60)");
    assertThat(etcdctl.run("lease", "timetolive", id, "--keys").ok().out())
        .contains("lease " + id + " granted with TTL(60s)").contains("attached keys([ls/k])");
    assertThat(etcdctl.run("lease", "list").ok().out()).contains(id);
    assertThat(etcdctl.run("lease", "revoke", id).ok().out()).contains("revoked");
    assertThat(etcdctl.run("get", "ls/k").ok().out()).isEmpty();

    // a short lease expires by itself and takes its key along
    String shortLease = etcdctl.run("lease", "grant", "2").ok().out().replaceAll("(?s)lease ([0-9a-f]+) .*", "$1").trim();
    etcdctl.run("put", "--lease=" + shortLease, "ls/short", "v").ok();
    assertThat(etcdctl.run("get", "ls/short", "--print-value-only").ok().out()).isEqualTo("v\n");
    await("the expired lease's key is gone").atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
        .until(() -> etcdctl.run("get", "ls/short").ok().out().isEmpty());
    assertThat(etcdctl.run("lease", "timetolive", shortLease).ok().out()).contains("already expired");
  }

  @Test
  void memberListEndpointStatusAndHealth() throws Exception {
    String members = etcdctl.run("member", "list").ok().out();
    for (int i = 0; i < 3; i++) {
      assertThat(members).contains(cluster.name(i)).contains("http://" + cluster.endpoint(i));
    }
    JsonNode status = json(etcdctl.run("endpoint", "status", "-w", "json").ok().out());
    assertThat(status).hasSize(3);
    long leader = status.get(0).at("/Status/leader").asLong();
    assertThat(leader).isNotZero();
    int leaders = 0;
    for (JsonNode s : status) {
      assertThat(s.at("/Status/leader").asLong()).isEqualTo(leader);
      assertThat(s.at("/Status/version").asText()).matches("3\\.[4-9].*");
      assertThat(s.at("/Status/raftIndex").asLong()).isPositive();
      if (s.at("/Status/header/member_id").asLong() == leader) {
        leaders++;
      }
    }
    assertThat(leaders).isEqualTo(1);
    Etcdctl.Result health = etcdctl.run("endpoint", "health");
    assertThat(health.exitCode()).isZero();
    assertThat(health.out() + health.err()).contains("is healthy");
  }

  @Test
  void moveLeaderHandsTheLeadershipToTheNamedMemberAndRefusesAStranger() throws Exception {
    JsonNode status = json(etcdctl.run("endpoint", "status", "-w", "json").ok().out());
    long leader = status.get(0).at("/Status/leader").asLong();
    long follower = 0;
    for (JsonNode s : status) {
      if (s.at("/Status/header/member_id").asLong() != leader) {
        follower = s.at("/Status/header/member_id").asLong();
      }
    }
    assertThat(follower).isNotZero();
    assertThat(etcdctl.run("move-leader", Long.toHexString(follower)).ok().out())
        .contains("Leadership transferred from " + Long.toHexString(leader) + " to " + Long.toHexString(follower));
    long moved = follower;
    await("every member names the new leader").atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(100))
        .until(() -> {
          JsonNode now = json(etcdctl.run("endpoint", "status", "-w", "json").ok().out());
          for (JsonNode s : now) {
            if (s.at("/Status/leader").asLong() != moved) {
              return false;
            }
          }
          return true;
        });
    assertThat(etcdctl.run("put", "ml/after", "1").ok().out()).isEqualTo("OK\n");

    Etcdctl.Result stranger = etcdctl.run("move-leader", "abcdef");
    assertThat(stranger.exitCode()).isNotZero();
    assertThat(stranger.err()).contains("etcdserver: bad leader transferee");
  }

  @Test
  void compactionRefusesOldRevisions() {
    long r1 = Long.parseLong(etcdctl.run("put", "cp/k", "1", "-w", "json").ok().out().replaceAll("(?s).*\"revision\":(\\d+).*", "$1"));
    long r2 = Long.parseLong(etcdctl.run("put", "cp/k", "2", "-w", "json").ok().out().replaceAll("(?s).*\"revision\":(\\d+).*", "$1"));
    assertThat(etcdctl.run("compaction", String.valueOf(r2)).ok().out()).isEqualTo("compacted revision " + r2 + "\n");
    Etcdctl.Result old = etcdctl.run("get", "cp/k", "--rev=" + r1);
    assertThat(old.exitCode()).isNotZero();
    assertThat(old.err()).contains("etcdserver: mvcc: required revision has been compacted");
    assertThat(etcdctl.run("get", "cp/k", "--rev=" + r2, "--print-value-only").ok().out()).isEqualTo("2\n");
  }

  @Test
  void badInputGetsEtcdsErrorsAndTheClusterKeepsServing() {
    Etcdctl.Result future = etcdctl.run("get", "any", "--rev=99999999");
    assertThat(future.exitCode()).isNotZero();
    assertThat(future.err()).contains("etcdserver: mvcc: required revision is a future revision");
    // the value comes from stdin (too long for an argument list), as etcdctl allows
    Etcdctl.Result big = etcdctl.runWithInput("x".repeat(1600 * 1024), "put", "big");
    assertThat(big.exitCode()).isNotZero();
    assertThat(big.err()).contains("etcdserver: request is too large");
    Etcdctl.Result noLease = etcdctl.run("put", "--lease=1234abcd", "k", "v");
    assertThat(noLease.exitCode()).isNotZero();
    assertThat(noLease.err()).contains("etcdserver: requested lease not found");
    assertThat(etcdctl.run("put", "after/bad", "fine").ok().out()).isEqualTo("OK\n");
  }
}
