package io.capstan.apiserver.storage;

import java.io.IOException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** The storage contract on a real etcd 3.4: the api-server must work unchanged against it. */
class ObjectStoreOnEtcdTest extends ObjectStoreContract {
  private static EtcdProcess etcd;
  private static EtcdClient client;

  @BeforeAll
  static void start() throws IOException {
    etcd = new EtcdProcess();
    client = new EtcdClient(etcd.endpoint());
  }

  @AfterAll
  static void stop() {
    if (client != null) {
      client.close();
    }
    if (etcd != null) {
      etcd.close();
    }
  }

  @Override
  protected EtcdClient client() {
    return client;
  }
}
