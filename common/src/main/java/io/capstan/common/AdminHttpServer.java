package io.capstan.common;

import com.codahale.metrics.MetricRegistry;
import io.capstan.common.http.HttpCall;
import io.capstan.common.http.HttpServer;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.instrumentation.dropwizard.DropwizardExports;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;

/**
 * The admin HTTP endpoint every Capstan process exposes: {@code /metrics} (Prometheus text
 * rendered from a Dropwizard {@link MetricRegistry}), {@code /healthz} and {@code /readyz}, on the
 * Netty {@link HttpServer}. The api-server serves its REST API on the same port, as the fallback
 * for every other path.
 *
 * <p>Health and readiness are suppliers of a {@link Check}: a process is healthy when it is alive
 * and able to make progress, ready when it can serve requests (for a kvstore member: it knows a
 * Raft leader and has applied what it committed).
 */
public final class AdminHttpServer implements AutoCloseable {
  /** The largest request body the admin endpoints alone accept (they take none). */
  private static final int ADMIN_MAX_BODY = 64 * 1024;

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
  private final ExecutorService ownExecutor;

  private AdminHttpServer(HttpServer server, ExecutorService ownExecutor) {
    this.server = server;
    this.ownExecutor = ownExecutor;
  }

  /**
   * Starts the endpoint on {@code host:port} (port 0 takes a free one).
   *
   * @throws java.io.UncheckedIOException if the address cannot be bound
   */
  public static AdminHttpServer start(
      String host, int port, MetricRegistry metrics, Supplier<Check> health, Supplier<Check> ready) {
    ExecutorService executor = Executors.newFixedThreadPool(2, r -> {
      Thread t = new Thread(r, "admin-http");
      t.setDaemon(true);
      return t;
    });
    try {
      return new AdminHttpServer(HttpServer.start("admin", host, port, ADMIN_MAX_BODY, executor, metrics,
          handler(metrics, health, ready, null)), executor);
    } catch (RuntimeException e) {
      executor.shutdownNow();
      throw e;
    }
  }

  /**
   * As {@link #start(String, int, MetricRegistry, Supplier, Supplier)}, with {@code fallback}
   * answering every other path (the api-server's REST API) on {@code executor}'s threads, for
   * request bodies up to {@code maxBodyBytes} and at most {@code maxInFlight} requests at once
   * (429 beyond). The caller owns the executor.
   */
  public static AdminHttpServer start(String host, int port, MetricRegistry metrics, Supplier<Check> health,
      Supplier<Check> ready, HttpServer.Handler fallback, Executor executor, int maxBodyBytes, int maxInFlight) {
    return new AdminHttpServer(HttpServer.start("api", host, port, maxBodyBytes, maxInFlight, executor, metrics,
        handler(metrics, health, ready, fallback)), null);
  }

  private static HttpServer.Handler handler(MetricRegistry metrics, Supplier<Check> health, Supplier<Check> ready,
      HttpServer.Handler fallback) {
    JvmMetrics.register(metrics);
    PrometheusRegistry prometheus = new PrometheusRegistry();
    DropwizardExports.builder().dropwizardRegistry(metrics).register(prometheus);
    PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.create();
    return new HttpServer.Handler() {
      @Override
      public void handle(HttpCall call) throws Exception {
        switch (call.path()) {
          case "/metrics" -> {
            ByteArrayOutputStream out = new ByteArrayOutputStream(16 * 1024);
            writer.write(out, prometheus.scrape());
            call.respond(200, writer.getContentType(), out.toByteArray());
          }
          case "/healthz", "/livez" -> respondCheck(call, health.get());
          case "/readyz" -> respondCheck(call, ready.get());
          default -> {
            if (fallback != null) {
              fallback.handle(call);
            } else {
              call.respond(404, "text/plain; charset=utf-8", "not found\n".getBytes(StandardCharsets.UTF_8));
            }
          }
        }
      }

      @Override
      public void refuse(HttpCall call, int code, String message) {
        if (fallback != null) {
          fallback.refuse(call, code, message);
        } else {
          HttpServer.Handler.super.refuse(call, code, message);
        }
      }
    };
  }

  public int port() {
    return server.port();
  }

  private static void respondCheck(HttpCall call, Check check) {
    byte[] body = ((check.ok() ? "ok" : "failing: " + check.detail()) + "\n").getBytes(StandardCharsets.UTF_8);
    call.respond(check.ok() ? 200 : 503, "text/plain; charset=utf-8", body);
  }

  @Override
  public void close() {
    server.close();
    if (ownExecutor != null) {
      ownExecutor.shutdownNow();
    }
  }
}
