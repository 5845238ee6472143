package io.capstan.kvstore.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A TCP relay on a loopback port to one target, whose open connections a test can silence: a
 * silenced connection relays nothing more in either direction (a read under way when it is
 * silenced is dropped, the rest stays unread), so that its ends see a connection that is up and
 * answers nothing (a host gone without a reset, a network dropping packets), while connections
 * made afterwards are relayed as usual.
 */
public final class TcpRelay implements AutoCloseable {
  private final ServerSocket listener;
  private final int targetPort;
  private final List<Link> links = new CopyOnWriteArrayList<>();
  private volatile boolean closed;

  /** A relay to {@code 127.0.0.1:targetPort}, listening on a free loopback port. */
  public TcpRelay(int targetPort) throws IOException {
    this.targetPort = targetPort;
    this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    Thread accept = new Thread(this::accept, "relay-accept-" + listener.getLocalPort());
    accept.setDaemon(true);
    accept.start();
  }

  /** {@code host:port} of the relay. */
  public String address() {
    return "127.0.0.1:" + listener.getLocalPort();
  }

  /** Connections accepted so far. */
  public int connections() {
    return links.size();
  }

  /** Stops relaying on every connection open now; they stay open. Later connections are relayed. */
  public void silenceOpenConnections() {
    links.forEach(l -> l.silenced = true);
  }

  private void accept() {
    while (!closed) {
      try {
        Socket in = listener.accept();
        Socket out = new Socket();
        out.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), targetPort), 5_000);
        Link link = new Link(in, out);
        links.add(link);
        pump(link, in, out, "up");
        pump(link, out, in, "down");
      } catch (IOException e) {
        if (!closed) {
          System.err.println("relay: " + e);
        }
      }
    }
  }

  private void pump(Link link, Socket from, Socket to, String direction) {
    Thread t = new Thread(() -> {
      byte[] buffer = new byte[16 * 1024];
      try (InputStream is = from.getInputStream(); OutputStream os = to.getOutputStream()) {
        while (!closed) {
          if (link.silenced) {
            // nothing read: the sender's buffers fill and its bytes wait, as in a black hole.
            // Checked each 50 ms until the relay closes; not a wait for a condition of the test's.
            Thread.sleep(50);
            continue;
          }
          int n = is.read(buffer);
          if (n < 0) {
            break;
          }
          if (!link.silenced) {
            os.write(buffer, 0, n);
            os.flush();
          }
        }
      } catch (IOException | InterruptedException e) {
        // either end closed: the link ends
      } finally {
        link.close();
      }
    }, "relay-" + direction + "-" + listener.getLocalPort());
    t.setDaemon(true);
    t.start();
  }

  @Override
  public void close() throws IOException {
    closed = true;
    listener.close();
    links.forEach(Link::close);
  }

  private static final class Link {
    private final Socket in;
    private final Socket out;
    volatile boolean silenced;

    Link(Socket in, Socket out) {
      this.in = in;
      this.out = out;
    }

    void close() {
      try {
        in.close();
      } catch (IOException ignored) {
        // already closed
      }
      try {
        out.close();
      } catch (IOException ignored) {
        // already closed
      }
    }
  }
}
