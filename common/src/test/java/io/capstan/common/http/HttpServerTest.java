package io.capstan.common.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.codahale.metrics.MetricRegistry;
import java.io.InputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The Netty HTTP server's connection rules, with a handler that can be held to order. */
class HttpServerTest {
  private final CountDownLatch release = new CountDownLatch(1);
  private final CountDownLatch slowStarted = new CountDownLatch(1);
  private ExecutorService executor;
  private HttpServer server;
  private final MetricRegistry metrics = new MetricRegistry();
  private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

  @BeforeEach
  void start() {
    executor = Executors.newFixedThreadPool(4);
    server = HttpServer.start("test", "127.0.0.1", 0, 1024, 1, executor, metrics, call -> {
      switch (call.path()) {
        case "/slow" -> {
          slowStarted.countDown();
          release.await(20, TimeUnit.SECONDS);
          call.respond(200, "text/plain", "slow".getBytes(StandardCharsets.UTF_8));
        }
        case "/stream" -> {
          HttpCall.Stream s = call.stream(200, "text/plain");
          s.write("one\n".getBytes(StandardCharsets.UTF_8));
          s.after(Duration.ofSeconds(1), () -> {
            s.write("two\n".getBytes(StandardCharsets.UTF_8));
            s.end();
          });
        }
        case "/echo" -> call.respond(200, "text/plain", call.body());
        default -> call.respond(404, "text/plain", new byte[0]);
      }
    });
  }

  @AfterEach
  void stop() {
    release.countDown();
    server.close();
    executor.shutdownNow();
  }

  private HttpResponse<String> get(String path) throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + path))
        .timeout(Duration.ofSeconds(20)).build(), HttpResponse.BodyHandlers.ofString());
  }

  private int inFlight() {
    return (Integer) metrics.getGauges().get("http_requests_in_flight").getValue();
  }

  @Test
  void requestsBeyondTheInFlightLimitGet429WithRetryAfterAndStreamsDoNotCount() throws Exception {
    CompletableFuture<HttpResponse<String>> slow = CompletableFuture.supplyAsync(() -> {
      try {
        return get("/slow");
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    });
    assertThat(slowStarted.await(20, TimeUnit.SECONDS)).isTrue();
    HttpResponse<String> refused = get("/echo");
    assertThat(refused.statusCode()).isEqualTo(429);
    assertThat(refused.headers().firstValue("Retry-After")).hasValue("1");
    release.countDown();
    assertThat(slow.get(20, TimeUnit.SECONDS).body()).isEqualTo("slow");

    // The slot is free once the slow handler has returned (just after its response went out).
    await().atMost(Duration.ofSeconds(20)).until(() -> inFlight() == 0);

    // A stream's handler returns at once: the stream goes on without holding the one slot.
    java.util.concurrent.BlockingQueue<String> lines = new java.util.concurrent.LinkedBlockingQueue<>();
    CompletableFuture<HttpResponse<Void>> stream = http.sendAsync(HttpRequest.newBuilder(
        URI.create("http://127.0.0.1:" + server.port() + "/stream")).build(), HttpResponse.BodyHandlers.ofLines())
        .thenApply(r -> {
          r.body().forEach(lines::add);
          return null;
        });
    assertThat(lines.poll(20, TimeUnit.SECONDS)).isEqualTo("one");
    await().atMost(Duration.ofSeconds(20)).until(() -> inFlight() == 0);
    HttpResponse<String> during = get("/echo");
    assertThat(during.statusCode()).isEqualTo(200);
    assertThat(stream).as("the stream is still open while /echo is answered").isNotDone();
    stream.get(20, TimeUnit.SECONDS);
    assertThat(lines.poll(20, TimeUnit.SECONDS)).isEqualTo("two");
    assertThat(metrics.getMeters()).containsKey("http_responses_429");
  }

  @Test
  void oversizedBodiesAndMalformedRequestsAreRefusedAndTheServerGoesOn() throws Exception {
    HttpResponse<String> big = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/echo"))
        .POST(HttpRequest.BodyPublishers.ofString("x".repeat(4096))).build(), HttpResponse.BodyHandlers.ofString());
    assertThat(big.statusCode()).isEqualTo(413);
    try (Socket s = new Socket("127.0.0.1", server.port())) {
      s.setSoTimeout(20_000);
      s.getOutputStream().write("GARBAGE\r\n\r\n".getBytes(StandardCharsets.UTF_8));
      InputStream in = s.getInputStream();
      assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).startsWith("HTTP/1.1 400");
    }
    assertThat(get("/echo").statusCode()).isEqualTo(200);
  }
}
