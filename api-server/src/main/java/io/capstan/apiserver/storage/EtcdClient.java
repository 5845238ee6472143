package io.capstan.apiserver.storage;

import io.capstan.common.Urls;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Channels to the kvstore (or any etcd v3) members. A call goes to the member that answered last;
 * when a member is unreachable the call moves on to the next one, until a deadline. The etcd API
 * makes every member accept every request, so any member will do.
 */
public final class EtcdClient implements AutoCloseable {
  private static final long RETRY_FOR_MS = 15_000;
  private final List<ManagedChannel> channels = new ArrayList<>();
  private volatile int current;

  /** @param endpoints comma-separated {@code http://host:port} URLs */
  public EtcdClient(String endpoints) {
    for (Urls.HostPort hp : Urls.parseList(endpoints)) {
      channels.add(NettyChannelBuilder.forAddress(hp.host(), hp.port()).usePlaintext()
          .maxInboundMessageSize(64 << 20).build());
    }
  }

  /**
   * Runs {@code call} against a member, moving to the next member while the error is one that
   * means "this member cannot serve now" (UNAVAILABLE). Writes are retried only when the etcd API
   * guarantees they were not applied, which callers ensure by making them conditional (Txn on
   * mod_revision): a retried create or update that did apply fails its compare, never applies
   * twice.
   */
  public <T> T call(Function<ManagedChannel, T> call) {
    long deadline = System.currentTimeMillis() + RETRY_FOR_MS;
    StatusRuntimeException last = null;
    int attempts = 0;
    while (System.currentTimeMillis() < deadline || attempts < channels.size()) {
      int i = current;
      try {
        return call.apply(channels.get(i));
      } catch (StatusRuntimeException e) {
        if (e.getStatus().getCode() != Status.Code.UNAVAILABLE) {
          throw e;
        }
        last = e;
        attempts++;
        current = (i + 1) % channels.size();
        if (attempts % channels.size() == 0) {
          pause();
        }
      }
    }
    throw ApiException.unavailable("the kvstore is unavailable: " + (last == null ? "no endpoint" : last.getStatus()));
  }

  /** The channel calls go to now (for streams, which handle their own failover). */
  public ManagedChannel channel() {
    return channels.get(current);
  }

  private static void pause() {
    try {
      Thread.sleep(100);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw ApiException.unavailable("interrupted");
    }
  }

  @Override
  public void close() {
    for (ManagedChannel c : channels) {
      c.shutdownNow();
    }
    for (ManagedChannel c : channels) {
      try {
        c.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
