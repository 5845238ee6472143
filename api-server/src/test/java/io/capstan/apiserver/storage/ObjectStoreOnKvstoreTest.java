package io.capstan.apiserver.storage;

import io.capstan.kvstore.testing.MiniCluster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** The storage contract on Capstan's own kvstore (a one-member in-process cluster). */
class ObjectStoreOnKvstoreTest extends ObjectStoreContract {
  private static MiniCluster kvstore;
  private static EtcdClient client;

  @BeforeAll
  static void start() {
    kvstore = MiniCluster.start(1);
    client = new EtcdClient(kvstore.endpoint(0));
  }

  @AfterAll
  static void stop() {
    if (client != null) {
      client.close();
    }
    if (kvstore != null) {
      kvstore.close();
    }
  }

  @Override
  protected EtcdClient client() {
    return client;
  }
}
