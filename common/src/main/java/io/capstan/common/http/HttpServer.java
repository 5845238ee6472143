package io.capstan.common.http;

import com.codahale.metrics.MetricRegistry;
import com.codahale.metrics.Timer;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBufUtil;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.EmptyHttpHeaders;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Locale;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An HTTP/1.1 server on Netty. Netty's event loops read and decode requests and write responses;
 * handlers run on a separate executor, so they may block (on the kvstore, say). A connection
 * serves its requests one at a time, in order: a request pipelined behind another waits for the
 * first one's response to be written, and a streaming response (a watch) holds its connection
 * until it ends, as HTTP/1.1 requires.
 *
 * <p>Request bodies over {@code maxBodyBytes} are refused with 413 before the handler sees them;
 * malformed requests get 400. Metrics: {@code http_requests} (a timer per method) and
 * {@code http_responses_<code>} meters, in the registry given.
 */
public final class HttpServer implements AutoCloseable {
  static final Logger LOG = LoggerFactory.getLogger(HttpServer.class);
  /** Bytes a streaming response may have queued for a slow client before it is cut off. */
  private static final int WRITE_BUFFER_HIGH = 8 * 1024 * 1024;

  /** Answers requests. Runs on the server's executor. */
  public interface Handler {
    void handle(HttpCall call) throws Exception;

    /** The answer to a request refused before {@link #handle} (malformed, too large, overloaded). */
    default void refuse(HttpCall call, int code, String message) {
      call.respond(code, "text/plain; charset=utf-8", (message + "\n").getBytes(StandardCharsets.UTF_8));
    }
  }

  private final EventLoopGroup boss;
  private final EventLoopGroup workers;
  private final Channel listener;

  private HttpServer(EventLoopGroup boss, EventLoopGroup workers, Channel listener) {
    this.boss = boss;
    this.workers = workers;
    this.listener = listener;
  }

  /**
   * Listens on {@code host:port} (0 takes a free port).
   *
   * @param name names the threads and the log lines
   * @throws java.io.UncheckedIOException if the address cannot be bound
   */
  public static HttpServer start(String name, String host, int port, int maxBodyBytes, Executor executor,
      MetricRegistry metrics, Handler handler) {
    return start(name, host, port, maxBodyBytes, Integer.MAX_VALUE, executor, metrics, handler);
  }

  /**
   * As {@link #start(String, String, int, int, Executor, MetricRegistry, Handler)}, answering 429
   * (with {@code Retry-After: 1}) to requests that arrive while {@code maxInFlight} handlers are
   * already running or queued, as kube-apiserver's {@code --max-requests-inflight} does. A
   * streaming response counts only until its handler returns, so long watches do not use up the
   * limit.
   */
  public static HttpServer start(String name, String host, int port, int maxBodyBytes, int maxInFlight, Executor executor,
      MetricRegistry metrics, Handler handler) {
    java.util.concurrent.atomic.AtomicInteger inFlight = new java.util.concurrent.atomic.AtomicInteger();
    metrics.gauge("http_requests_in_flight", () -> inFlight::get);
    EventLoopGroup boss = new MultiThreadIoEventLoopGroup(1, new DefaultThreadFactory(name + "-accept", true), NioIoHandler.newFactory());
    EventLoopGroup workers = new MultiThreadIoEventLoopGroup(Math.min(4, Runtime.getRuntime().availableProcessors()),
        new DefaultThreadFactory(name + "-io", true), NioIoHandler.newFactory());
    try {
      Channel ch = new ServerBootstrap().group(boss, workers).channel(NioServerSocketChannel.class)
          .option(ChannelOption.SO_BACKLOG, 128)
          .childOption(ChannelOption.TCP_NODELAY, true)
          .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(WRITE_BUFFER_HIGH / 2, WRITE_BUFFER_HIGH))
          .childHandler(new ChannelInitializer<SocketChannel>() {
            @Override
            protected void initChannel(SocketChannel c) {
              Connection conn = new Connection(executor, metrics, handler, inFlight, maxInFlight);
              c.pipeline().addLast(new HttpServerCodec(8192, 64 * 1024, 8192));
              c.pipeline().addLast(new HttpObjectAggregator(maxBodyBytes) {
                @Override
                protected void handleOversizedMessage(ChannelHandlerContext ctx, io.netty.handler.codec.http.HttpMessage oversized) {
                  HttpRequest r = (HttpRequest) oversized;
                  conn.refuse(ctx.channel(), r, 413, "the request body is larger than " + maxBodyBytes + " bytes");
                }
              });
              c.pipeline().addLast(conn);
            }
          })
          .bind(new InetSocketAddress(host, port)).syncUninterruptibly().channel();
      LOG.info("{} HTTP listening on {}", name, ch.localAddress());
      return new HttpServer(boss, workers, ch);
    } catch (Exception e) { // a BindException arrives unchecked from syncUninterruptibly
      boss.shutdownGracefully(0, 0, java.util.concurrent.TimeUnit.SECONDS);
      workers.shutdownGracefully(0, 0, java.util.concurrent.TimeUnit.SECONDS);
      throw new java.io.UncheckedIOException("cannot listen for " + name + " HTTP on " + host + ":" + port + ": " + e.getMessage(),
          e instanceof java.io.IOException io ? io : new java.io.IOException(e));
    }
  }

  public int port() {
    return ((InetSocketAddress) listener.localAddress()).getPort();
  }

  @Override
  public void close() {
    listener.close().syncUninterruptibly();
    boss.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS);
    workers.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
  }

  /** One connection's requests, handled one at a time. Its fields are touched only on its event loop. */
  private static final class Connection extends SimpleChannelInboundHandler<FullHttpRequest> {
    private final Executor executor;
    private final MetricRegistry metrics;
    private final Handler handler;
    private final ArrayDeque<HttpCall> pending = new ArrayDeque<>();
    private boolean busy;
    private boolean refused;
    private final java.util.concurrent.atomic.AtomicInteger inFlight;
    private final int maxInFlight;

    Connection(Executor executor, MetricRegistry metrics, Handler handler, java.util.concurrent.atomic.AtomicInteger inFlight,
        int maxInFlight) {
      this.executor = executor;
      this.metrics = metrics;
      this.handler = handler;
      this.inFlight = inFlight;
      this.maxInFlight = maxInFlight;
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
      if (refused) {
        return; // the rest of a connection we are closing
      }
      if (req.decoderResult().isFailure()) {
        refuse(ctx.channel(), req, 400, "malformed HTTP request: " + req.decoderResult().cause().getMessage());
        return;
      }
      byte[] body = ByteBufUtil.getBytes(req.content());
      Timer.Context timer = metrics.timer("http_requests_" + req.method().name().toLowerCase(Locale.ROOT)).time();
      Channel ch = ctx.channel();
      HttpCall call = new HttpCall(ch, req.method(), req.uri(), req.headers().copy(), body, HttpUtil.isKeepAlive(req), code -> {
        timer.stop();
        metrics.meter("http_responses_" + code).mark();
        ch.eventLoop().execute(() -> next(ch));
      });
      pending.add(call);
      if (!busy) {
        next(ch);
      }
    }

    /** Starts the next queued request, if the previous one is done. */
    private void next(Channel ch) {
      HttpCall call = pending.poll();
      busy = call != null;
      if (call == null) {
        return;
      }
      if (inFlight.incrementAndGet() > maxInFlight) {
        inFlight.decrementAndGet();
        call.responseHeader("Retry-After", "1");
        handler.refuse(call, 429, "too many requests, please try again later");
        return;
      }
      try {
        executor.execute(() -> run(call));
      } catch (RejectedExecutionException e) {
        inFlight.decrementAndGet();
        handler.refuse(call, 503, "the server is shutting down");
      }
    }

    private void run(HttpCall call) {
      try {
        handler.handle(call);
      } catch (Exception | Error e) {
        LOG.warn("HTTP {} {} failed", call.method(), call.uri(), e);
        if (!call.answered()) {
          handler.refuse(call, 500, "internal error: " + e);
        }
      } finally {
        inFlight.decrementAndGet();
      }
    }

    /** Answers a request the handler never sees, then closes the connection (its input is in an unknown state). */
    void refuse(Channel ch, HttpRequest r, int code, String message) {
      refused = true;
      HttpCall call = new HttpCall(ch, r.method() == null ? HttpMethod.GET : r.method(), r.uri() == null ? "/" : r.uri(),
          r.headers() == null ? EmptyHttpHeaders.INSTANCE : r.headers().copy(), new byte[0], false, true, c -> { });
      LOG.info("refusing HTTP request {} {} from {}: {} {}", call.method(), call.uri(), ch.remoteAddress(), code, message);
      metrics.meter("http_responses_" + code).mark();
      executor.execute(() -> {
        try {
          handler.refuse(call, code, message);
        } catch (RuntimeException e) {
          ch.close();
        }
      });
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      if (!(cause instanceof java.io.IOException)) {
        LOG.warn("HTTP connection from {} failed", ctx.channel().remoteAddress(), cause);
      }
      ctx.close();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      pending.clear();
      ctx.fireChannelInactive();
    }
  }
}
