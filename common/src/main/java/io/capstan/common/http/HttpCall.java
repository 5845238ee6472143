package io.capstan.common.http;

import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import java.time.Duration;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntConsumer;

/**
 * One HTTP request and its response. The request is fully read before the handler sees it; the
 * response is either one whole body ({@link #respond}) or a chunked stream ({@link #stream}) that
 * may be written from any thread, as watch events arrive. Exactly one response per call.
 */
public final class HttpCall {
  private final Channel channel;
  private final HttpMethod method;
  private final String uri;
  private final HttpHeaders headers;
  private final byte[] body;
  private final boolean keepAlive;
  private final boolean unreadInput;
  private final IntConsumer done;
  private final AtomicBoolean answered = new AtomicBoolean();
  private final java.util.Map<String, String> responseHeaders = new java.util.concurrent.ConcurrentHashMap<>();

  HttpCall(Channel channel, HttpMethod method, String uri, HttpHeaders headers, byte[] body, boolean keepAlive,
      IntConsumer done) {
    this(channel, method, uri, headers, body, keepAlive, false, done);
  }

  /**
   * @param unreadInput the request was refused before it was read to its end (a body too large):
   *     after the response the connection is half-closed and the rest of the input discarded, as
   *     closing it with input unread would reset it and could destroy the response on its way
   */
  HttpCall(Channel channel, HttpMethod method, String uri, HttpHeaders headers, byte[] body, boolean keepAlive,
      boolean unreadInput, IntConsumer done) {
    this.unreadInput = unreadInput;
    this.channel = channel;
    this.method = method;
    this.uri = uri;
    this.headers = headers;
    this.body = body;
    this.keepAlive = keepAlive;
    this.done = done;
  }

  public String method() {
    return method.name();
  }

  /** The path, still percent-encoded, without the query. */
  public String path() {
    int q = uri.indexOf('?');
    return q < 0 ? uri : uri.substring(0, q);
  }

  /** The raw query string, or null if the URI has none. */
  public String rawQuery() {
    int q = uri.indexOf('?');
    return q < 0 ? null : uri.substring(q + 1);
  }

  public String uri() {
    return uri;
  }

  /** The first value of a request header, or null. */
  public String header(String name) {
    return headers.get(name);
  }

  public byte[] body() {
    return body;
  }

  public boolean answered() {
    return answered.get();
  }

  /** Adds a header to the response (before it is sent). */
  public HttpCall responseHeader(String name, String value) {
    responseHeaders.put(name, value);
    return this;
  }

  /** Sends the whole response (no body for HEAD, though Content-Length says what GET would send). */
  public void respond(int code, String contentType, byte[] content) {
    claim();
    boolean head = method.equals(HttpMethod.HEAD);
    FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.valueOf(code),
        head ? Unpooled.EMPTY_BUFFER : Unpooled.wrappedBuffer(content));
    r.headers().set(HttpHeaderNames.CONTENT_TYPE, contentType);
    r.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, content.length);
    finish(channel.writeAndFlush(keepAliveHeaders(r)), code);
  }

  /**
   * Starts a chunked response. Events written to the stream go out in the order they are written,
   * whatever the threads; the call is done when {@link Stream#end()} is called or the client goes.
   */
  public Stream stream(int code, String contentType) {
    claim();
    HttpResponse r = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.valueOf(code));
    r.headers().set(HttpHeaderNames.CONTENT_TYPE, contentType);
    HttpUtil.setTransferEncodingChunked(r, true);
    channel.writeAndFlush(keepAliveHeaders(r));
    return new Stream(code);
  }

  private HttpResponse keepAliveHeaders(HttpResponse r) {
    responseHeaders.forEach((k, v) -> r.headers().set(k, v));
    if (keepAlive) {
      r.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
    } else {
      r.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
    }
    return r;
  }

  private void claim() {
    if (!answered.compareAndSet(false, true)) {
      throw new IllegalStateException("response already sent for " + method + " " + uri);
    }
  }

  private void finish(io.netty.channel.ChannelFuture written, int code) {
    written.addListener(f -> done.accept(code));
    if (!keepAlive && unreadInput && channel instanceof io.netty.channel.socket.SocketChannel socket) {
      written.addListener(f -> {
        socket.shutdownOutput();
        socket.eventLoop().schedule(() -> socket.close(), 10, java.util.concurrent.TimeUnit.SECONDS);
      });
    } else if (!keepAlive) {
      written.addListener(ChannelFutureListener.CLOSE);
    }
  }

  /** A chunked response body being written. */
  public final class Stream {
    private final int code;
    private final AtomicBoolean ended = new AtomicBoolean();
    private final AtomicBoolean finished = new AtomicBoolean();
    private final java.util.List<Runnable> onFinish = new java.util.concurrent.CopyOnWriteArrayList<>();

    private Stream(int code) {
      this.code = code;
      channel.closeFuture().addListener(f -> finished());
    }

    /**
     * Queues one chunk. Returns false (and drops the connection) if the client is gone or reads so
     * slowly that more than the server's write buffer is pending: a watcher that cannot keep up is
     * cut off rather than allowed to hold unbounded memory, as Kubernetes does.
     */
    public boolean write(byte[] chunk) {
      if (ended.get() || !channel.isActive()) {
        return false;
      }
      if (!channel.isWritable()) {
        HttpServer.LOG.warn("closing a streaming response to {}: the client reads too slowly", channel.remoteAddress());
        channel.close();
        return false;
      }
      channel.writeAndFlush(new DefaultHttpContent(Unpooled.wrappedBuffer(chunk)));
      return true;
    }

    /** Ends the response; the connection then serves its next request. */
    public void end() {
      if (ended.compareAndSet(false, true)) {
        finish(channel.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT), code);
        finished();
      }
    }

    public boolean isOpen() {
      return !ended.get() && channel.isActive();
    }

    /**
     * Runs {@code r} once when the stream ends or the connection closes, whichever comes first
     * (at once if that has happened already).
     */
    public void onFinish(Runnable r) {
      onFinish.add(r);
      if (finished.get() && onFinish.remove(r)) {
        r.run();
      }
    }

    private void finished() {
      if (finished.compareAndSet(false, true)) {
        for (Runnable r : onFinish) {
          if (onFinish.remove(r)) {
            r.run();
          }
        }
      }
    }

    /** Runs {@code r} every {@code period} on the connection's event loop until the stream finishes. */
    public void every(Duration period, Runnable r) {
      ScheduledFuture<?> f = channel.eventLoop().scheduleAtFixedRate(r, period.toMillis(), period.toMillis(), TimeUnit.MILLISECONDS);
      onFinish(() -> f.cancel(false));
    }

    /** Runs {@code r} once after {@code delay} unless the stream finishes first. */
    public void after(Duration delay, Runnable r) {
      ScheduledFuture<?> f = channel.eventLoop().schedule(r, delay.toMillis(), TimeUnit.MILLISECONDS);
      onFinish(() -> f.cancel(false));
    }
  }
}
