package io.capstan.common;

import com.codahale.metrics.MetricRegistry;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.instrumentation.dropwizard.DropwizardExports;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The admin HTTP endpoint every Capstan process exposes: {@code /metrics} (Prometheus text
 * rendered from a Dropwizard {@link MetricRegistry}), {@code /healthz} and {@code /readyz}.
 *
 * <p>Health and readiness are suppliers of a {@link Check}: a process is healthy when it is alive
 * and able to make progress, ready when it can serve requests (for a kvstore member: it knows a
 * Raft leader and has applied what it committed).
 */
public final class AdminHttpServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(AdminHttpServer.class);

  /** The result of a health or readiness probe. */
  public record Check(boolean ok, String detail) {
    public static Check passing() {
      return new Check(true, "ok");
    }

    public static Check failing(String detail) {
      return new Check(false, detail);
    }
  }

  private final HttpServer server;

  private AdminHttpServer(HttpServer server) {
    this.server = server;
  }

  /**
   * Starts the endpoint on {@code host:port} (port 0 takes a free one).
   *
   * @throws java.io.UncheckedIOException if the address cannot be bound
   */
  public static AdminHttpServer start(
      String host, int port, MetricRegistry metrics, Supplier<Check> health, Supplier<Check> ready) {
    return start(host, port, metrics, health, ready, null, null);
  }

  /**
   * As {@link #start(String, int, MetricRegistry, Supplier, Supplier)}, with {@code fallback}
   * serving every other path (the api-server's REST API) on {@code executor}'s threads.
   */
  public static AdminHttpServer start(String host, int port, MetricRegistry metrics, Supplier<Check> health,
      Supplier<Check> ready, com.sun.net.httpserver.HttpHandler fallback, java.util.concurrent.Executor executor) {
    try {
      HttpServer server = HttpServer.create(new InetSocketAddress(host, port), 64);
      PrometheusRegistry prometheus = new PrometheusRegistry();
      DropwizardExports.builder().dropwizardRegistry(metrics).register(prometheus);
      PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.create();
      server.createContext("/metrics", exchange -> {
        ByteArrayOutputStream out = new ByteArrayOutputStream(16 * 1024);
        writer.write(out, prometheus.scrape());
        respond(exchange, 200, writer.getContentType(), out.toByteArray());
      });
      server.createContext("/healthz", exchange -> respondCheck(exchange, health.get()));
      server.createContext("/readyz", exchange -> respondCheck(exchange, ready.get()));
      server.createContext("/", fallback != null ? fallback
          : exchange -> respond(exchange, 404, "text/plain", "not found\n".getBytes(StandardCharsets.UTF_8)));
      server.setExecutor(executor != null ? executor : Executors.newFixedThreadPool(2, r -> {
        Thread t = new Thread(r, "admin-http");
        t.setDaemon(true);
        return t;
      }));
      server.start();
      LOG.info("admin HTTP (/metrics, /healthz, /readyz) listening on {}", server.getAddress());
      return new AdminHttpServer(server);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException("cannot listen for admin HTTP on " + host + ":" + port, e);
    }
  }

  public int port() {
    return server.getAddress().getPort();
  }

  private static void respondCheck(HttpExchange exchange, Check check) throws IOException {
    byte[] body = ((check.ok() ? "ok" : "failing: " + check.detail()) + "\n").getBytes(StandardCharsets.UTF_8);
    respond(exchange, check.ok() ? 200 : 503, "text/plain; charset=utf-8", body);
  }

  private static void respond(HttpExchange exchange, int code, String contentType, byte[] body) throws IOException {
    try (exchange) {
      exchange.getResponseHeaders().set("Content-Type", contentType);
      boolean head = "HEAD".equalsIgnoreCase(exchange.getRequestMethod());
      exchange.sendResponseHeaders(code, head ? -1 : body.length);
      if (!head) {
        try (OutputStream os = exchange.getResponseBody()) {
          os.write(body);
        }
      }
    }
  }

  @Override
  public void close() {
    server.stop(0);
    ((java.util.concurrent.ExecutorService) server.getExecutor()).shutdownNow();
  }
}
