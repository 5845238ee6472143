package io.capstan.bench;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** gRPC channels to a list of etcd-API endpoints ({@code host:port} or {@code http://host:port}). */
final class Endpoints implements AutoCloseable {
  final List<String> addresses = new ArrayList<>();
  final List<ManagedChannel> channels = new ArrayList<>();

  /** {@code conns} channels, spread round-robin over the endpoints. */
  Endpoints(String list, int conns) {
    for (String e : list.split(",")) {
      String t = e.trim().replaceFirst("^https?://", "");
      if (!t.isEmpty()) {
        addresses.add(t);
      }
    }
    if (addresses.isEmpty()) {
      throw new IllegalArgumentException("no endpoint in '" + list + "'");
    }
    for (int i = 0; i < Math.max(conns, 1); i++) {
      channels.add(open(addresses.get(i % addresses.size())));
    }
  }

  static ManagedChannel open(String address) {
    int colon = address.lastIndexOf(':');
    return NettyChannelBuilder.forAddress(address.substring(0, colon), Integer.parseInt(address.substring(colon + 1)))
        // Callbacks run on the transport threads: the client spends its CPU on the transport, not
        // on executor hand-offs, and competes less with the members it measures.
        .usePlaintext().directExecutor().maxInboundMessageSize(64 << 20).build();
  }

  ManagedChannel channel(int i) {
    return channels.get(Math.floorMod(i, channels.size()));
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
