package io.capstan.kvstore.testing;

import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.WatchCreateRequest;
import io.etcd.jetcd.api.WatchGrpc;
import io.etcd.jetcd.api.WatchRequest;
import io.etcd.jetcd.api.WatchResponse;
import io.grpc.Channel;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** One raw etcd watch stream for tests: responses are queued; errors end the stream. */
public final class WatchClient implements AutoCloseable {
  private final BlockingQueue<WatchResponse> responses = new LinkedBlockingQueue<>();
  private final StreamObserver<WatchRequest> requests;
  private volatile Throwable error;
  private volatile boolean completed;

  public WatchClient(Channel channel) {
    requests = WatchGrpc.newStub(channel).watch(new StreamObserver<>() {
      @Override
      public void onNext(WatchResponse r) {
        responses.add(r);
      }

      @Override
      public void onError(Throwable t) {
        error = t;
      }

      @Override
      public void onCompleted() {
        completed = true;
      }
    });
  }

  public WatchClient create(WatchCreateRequest create) {
    synchronized (requests) {
      requests.onNext(WatchRequest.newBuilder().setCreateRequest(create).build());
    }
    return this;
  }

  public void send(WatchRequest r) {
    synchronized (requests) {
      requests.onNext(r);
    }
  }

  /** The stream failed or ended (for example because its member died). */
  public boolean broken() {
    return error != null || completed;
  }

  /** Next response within the timeout, or null. */
  public WatchResponse poll(long timeoutMs) throws InterruptedException {
    return responses.poll(timeoutMs, TimeUnit.MILLISECONDS);
  }

  /** Waits for a response matching {@code p}; fails on timeout. */
  public WatchResponse await(Predicate<WatchResponse> p, long timeoutMs) throws InterruptedException {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (System.currentTimeMillis() < deadline) {
      WatchResponse r = responses.poll(50, TimeUnit.MILLISECONDS);
      if (r != null && p.test(r)) {
        return r;
      }
    }
    throw new AssertionError("no matching watch response within " + timeoutMs + " ms (error: " + error + ")");
  }

  /** Collects events until {@code done} holds for the list so far or the stream breaks. */
  public List<Event> collectEvents(Predicate<List<Event>> done, long timeoutMs) throws InterruptedException {
    List<Event> out = new ArrayList<>();
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (!done.test(out) && System.currentTimeMillis() < deadline) {
      WatchResponse r = responses.poll(50, TimeUnit.MILLISECONDS);
      if (r != null) {
        out.addAll(r.getEventsList());
      } else if (broken() && responses.isEmpty()) {
        break;
      }
    }
    return out;
  }

  @Override
  public void close() {
    try {
      synchronized (requests) {
        requests.onCompleted();
      }
    } catch (RuntimeException ignored) {
      // the stream may already be gone with its member
    }
  }
}
