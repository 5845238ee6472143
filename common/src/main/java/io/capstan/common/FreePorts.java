package io.capstan.common;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Free loopback ports for tests and local launchers that must name a port before the process that
 * listens on it starts (a kvstore member's peer URL, say).
 *
 * <p>Ports come from below the kernel's ephemeral range (32768–60999 by default on Linux). A port
 * found free by binding to port 0 lies inside that range, where the kernel also picks the local
 * ports of outgoing connections; in the gap before the intended process binds it, one of the
 * cluster's own connections can take it, and the process fails with "address already in use".
 * Below the range only another listener can collide, and a port is never handed out twice by one
 * JVM.
 */
public final class FreePorts {
  private static final int LOW = 15_000;
  private static final int HIGH = 32_000;
  private static final Set<Integer> HANDED_OUT = ConcurrentHashMap.newKeySet();

  private FreePorts() {}

  /** A loopback port nothing listens on now and this JVM has not handed out before. */
  public static int next() {
    for (int attempt = 0; attempt < 1000; attempt++) {
      int port = ThreadLocalRandom.current().nextInt(LOW, HIGH);
      if (HANDED_OUT.contains(port)) {
        continue;
      }
      try (ServerSocket s = new ServerSocket()) {
        s.setReuseAddress(true);
        s.bind(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), port), 1);
      } catch (IOException taken) {
        continue;
      }
      if (HANDED_OUT.add(port)) {
        return port;
      }
    }
    throw new IllegalStateException("no free loopback port in " + LOW + "-" + HIGH + " after 1000 attempts");
  }
}
