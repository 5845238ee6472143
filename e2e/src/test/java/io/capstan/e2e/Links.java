package io.capstan.e2e;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;

/**
 * The network between the members of a {@link DistCluster}, as TCP relays the test controls:
 * a member reaches every other member's peer port and client port (Raft, and the writes and
 * read-index checks it forwards) through a relay of this class, so that the test can cut the
 * bytes from one member to another, in one direction or both, and mend the cut later.
 *
 * <p>A cut is a black hole, as a firewall that drops packets is (Jepsen's partitions): the bytes
 * a relay reads stay with it, so the sender's TCP window fills and its writes stall; no
 * connection is closed or refused, and nothing says that the other side is gone. When the cut
 * is mended, what was held is delivered late, as TCP's retransmissions would deliver it.
 *
 * <p>Every relay listens for one member; who connects is found from the kernel's socket tables:
 * the connecting socket's inode ({@code /proc/net/tcp6}, {@code /proc/net/tcp}) among the member
 * processes' open files ({@code /proc/<pid>/fd}). A connection from any other process (none is
 * expected: clients of the test use the members' own ports) is never cut, and is counted in
 * {@link #unidentified()}. Linux only.
 */
final class Links implements AutoCloseable {
  enum Kind { PEER, CLIENT }

  private final int size;
  private final IntFunction<Long> pidOf;
  private final ServerSocket[][] listeners;
  /** {@code cut[from][to]}: bytes from member {@code from} to member {@code to} are held (guarded by this). */
  private final boolean[][] cut;
  private final List<Socket> sockets = new CopyOnWriteArrayList<>();
  private final AtomicLong unidentified = new AtomicLong();
  private volatile boolean closed;

  /**
   * Relays for {@code size} members; {@code pidOf} gives member {@code i}'s process ID (null
   * when it is not running), {@code targets} its real ports by kind.
   */
  Links(int size, IntFunction<Long> pidOf, java.util.function.BiFunction<Kind, Integer, Integer> targets) {
    this.size = size;
    this.pidOf = pidOf;
    this.cut = new boolean[size][size];
    this.listeners = new ServerSocket[Kind.values().length][size];
    try {
      for (Kind kind : Kind.values()) {
        for (int i = 0; i < size; i++) {
          ServerSocket s = new ServerSocket();
          s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
          listeners[kind.ordinal()][i] = s;
          int member = i;
          int target = targets.apply(kind, i);
          start("links-accept-" + kind.name().toLowerCase(Locale.ROOT) + "-" + i, () -> accept(s, member, target));
        }
      }
    } catch (IOException e) {
      close();
      throw new UncheckedIOException(e);
    }
  }

  /** The port through which the other members reach member {@code i}'s {@code kind} port. */
  int port(Kind kind, int i) {
    return listeners[kind.ordinal()][i].getLocalPort();
  }

  /** Holds the bytes from member {@code from} to member {@code to} (one direction only). */
  synchronized void cut(int from, int to) {
    cut[from][to] = true;
    System.out.printf("links: cut %d -> %d%n", from, to);
  }

  /** Cuts member {@code i} off from every other member, both ways. */
  synchronized void isolate(int i) {
    for (int j = 0; j < size; j++) {
      if (j != i) {
        cut[i][j] = true;
        cut[j][i] = true;
      }
    }
    System.out.printf("links: member %d isolated%n", i);
  }

  /** Mends every cut; held bytes flow on. */
  synchronized void heal() {
    for (boolean[] row : cut) {
      java.util.Arrays.fill(row, false);
    }
    notifyAll();
    System.out.println("links: healed");
  }

  /** Connections whose member could not be found (never cut). */
  long unidentified() {
    return unidentified.get();
  }

  private synchronized void awaitOpen(int from, int to) throws InterruptedException {
    while (cut[from][to] && !closed) {
      wait();
    }
  }

  private void accept(ServerSocket listener, int to, int targetPort) {
    while (!closed) {
      Socket in;
      try {
        in = listener.accept();
      } catch (IOException e) {
        return; // closed
      }
      sockets.add(in);
      // placing the connection may take a while: not on the thread that accepts the next one
      start("links-open-" + to + "-" + in.getPort(), () -> relay(in, listener.getLocalPort(), to, targetPort));
    }
  }

  /** Finds who opened {@code in}, connects to the member's real port and pumps both ways. */
  private void relay(Socket in, int listenerPort, int to, int targetPort) {
    int from = identify(in.getPort(), listenerPort);
    Socket out = new Socket();
    sockets.add(out);
    try {
      out.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), targetPort), 5_000);
    } catch (IOException e) {
      // the member is down: so is the relayed connection, as it would be without the relay
      closeQuietly(in);
      closeQuietly(out);
      sockets.remove(in);
      sockets.remove(out);
      return;
    }
    String name = "links-" + from + "-" + to + "-" + in.getPort();
    start(name + "-up", () -> pump(in, out, from, to));
    start(name + "-down", () -> pump(out, in, to, from));
  }

  /** Copies {@code src} to {@code dst}, holding each chunk while bytes from {@code from} to {@code to} are cut. */
  private void pump(Socket src, Socket dst, int from, int to) {
    byte[] buf = new byte[64 * 1024];
    try (InputStream in = src.getInputStream(); OutputStream out = dst.getOutputStream()) {
      for (int n; (n = in.read(buf)) >= 0; ) {
        if (from >= 0 && to >= 0) {
          awaitOpen(from, to);
        }
        out.write(buf, 0, n);
        out.flush();
      }
    } catch (IOException | InterruptedException e) {
      // one side closed or reset: end both, as one TCP connection would end
    } finally {
      closeQuietly(src);
      closeQuietly(dst);
      sockets.remove(src);
      sockets.remove(dst);
    }
  }

  /**
   * {@link #memberOf}, asked again for up to a second while it finds nobody (the long chaos run
   * once had one connection in ~40 rounds that a single look did not place); -1 and a line on
   * stdout if it never does.
   */
  private int identify(int port, int listenerPort) {
    for (int attempt = 0; attempt < 50 && !closed; attempt++) {
      int member = memberOf(port, listenerPort);
      if (member >= 0) {
        return member;
      }
      java.util.concurrent.locks.LockSupport.parkNanos(java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(20));
    }
    unidentified.incrementAndGet();
    String inode = socketInode(port, listenerPort);
    System.out.printf("links: no member holds the connection from port %d to relay port %d (inode %s; in this JVM: %s)%n",
        port, listenerPort, inode, inode != null && holds(ProcessHandle.current().pid(), "socket:[" + inode + "]"));
    return -1;
  }

  /**
   * The member whose process holds the socket connected from local port {@code port} to {@code
   * listenerPort}, or -1.
   */
  private int memberOf(int port, int listenerPort) {
    String inode = socketInode(port, listenerPort);
    if (inode == null) {
      return -1;
    }
    String link = "socket:[" + inode + "]";
    for (int i = 0; i < size; i++) {
      Long pid = pidOf.apply(i);
      if (pid != null && holds(pid, link)) {
        return i;
      }
    }
    return -1;
  }

  /** Whether process {@code pid} has an open file that is {@code link} ({@code socket:[inode]}). */
  private static boolean holds(long pid, String link) {
    try (DirectoryStream<Path> fds = Files.newDirectoryStream(Paths.get("/proc", Long.toString(pid), "fd"))) {
      for (Path fd : fds) {
        try {
          if (link.equals(Files.readSymbolicLink(fd).toString())) {
            return true;
          }
        } catch (IOException closedMeanwhile) {
          // an fd closed while we looked: not this one
        }
      }
    } catch (IOException gone) {
      // the process exited
    }
    return false;
  }

  /** The inode of the socket bound to local port {@code port} and connected to remote port {@code remotePort}. */
  private static String socketInode(int port, int remotePort) {
    String local = String.format(":%04X", port);
    String remote = String.format(":%04X", remotePort);
    for (String table : List.of("/proc/net/tcp6", "/proc/net/tcp")) {
      try {
        for (String line : Files.readAllLines(Paths.get(table))) {
          String[] f = line.trim().split("\\s+");
          if (f.length > 9 && f[1].endsWith(local) && f[2].endsWith(remote)) {
            return f[9];
          }
        }
      } catch (IOException e) {
        // no such table (no IPv6): the other may have it
      }
    }
    return null;
  }

  private void start(String name, Runnable body) {
    Thread t = new Thread(body, name);
    t.setDaemon(true);
    t.start();
  }

  private static void closeQuietly(java.io.Closeable c) {
    try {
      c.close();
    } catch (IOException ignored) {
      // closing anyway
    }
  }

  @Override
  public void close() {
    closed = true;
    synchronized (this) {
      notifyAll();
    }
    for (ServerSocket[] row : listeners) {
      for (ServerSocket s : row) {
        if (s != null) {
          closeQuietly(s);
        }
      }
    }
    for (Socket s : new ArrayList<>(sockets)) {
      closeQuietly(s);
    }
  }
}
