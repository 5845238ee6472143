package io.capstan.apiserver.storage;

import io.capstan.common.Urls;
import io.capstan.kvstore.KvStoreConfig;
import io.capstan.kvstore.KvStoreServer;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** The storage contract on Capstan's own kvstore (one in-process member). */
class ObjectStoreOnKvstoreTest extends ObjectStoreContract {
  private static KvStoreServer kvstore;
  private static EtcdClient client;
  private static Path dir;

  @BeforeAll
  static void start() throws IOException {
    dir = Files.createTempDirectory("apiserver-kv");
    int client0 = freePort();
    int peer = freePort();
    kvstore = KvStoreServer.start(KvStoreConfig.builder().name("n1").dataDir(dir)
        .listenClientUrls(List.of(new Urls.HostPort("127.0.0.1", client0)))
        .listenPeerUrl(new Urls.HostPort("127.0.0.1", peer)).build());
    long deadline = System.currentTimeMillis() + 30_000;
    while (!kvstore.raft().isLeaderReady() && System.currentTimeMillis() < deadline) {
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    client = new EtcdClient("http://127.0.0.1:" + client0);
  }

  @AfterAll
  static void stop() throws IOException {
    if (client != null) {
      client.close();
    }
    if (kvstore != null) {
      kvstore.close();
    }
    EtcdProcess.deleteTree(dir);
  }

  static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    }
  }

  @Override
  protected EtcdClient client() {
    return client;
  }
}
