package io.capstan.kvstore.watch;

import io.capstan.kvstore.mvcc.KvException;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.ResponseHeader;
import io.etcd.jetcd.api.WatchCancelRequest;
import io.etcd.jetcd.api.WatchCreateRequest;
import io.etcd.jetcd.api.WatchRequest;
import io.etcd.jetcd.api.WatchResponse;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client's Watch stream: many watchers, created and cancelled by the client's requests, and
 * one ordered queue of responses drained under gRPC flow control. A client that reads too slowly
 * for too long has its stream ended with RESOURCE_EXHAUSTED (its watchers resume elsewhere from
 * their last revision), instead of the member's memory growing without bound.
 */
public final class WatchStream implements StreamObserver<WatchRequest> {
  private static final Logger LOG = LoggerFactory.getLogger(WatchStream.class);
  /** Queued responses beyond which a stream counts as stuck. */
  static final int MAX_QUEUED = 200_000;

  private final WatchHub hub;
  private final ServerCallStreamObserver<WatchResponse> out;
  private final LongFunction<ResponseHeader> header;
  private volatile ResponseHeader lastEventHeader;
  private final Executor sendExecutor;
  private final Map<Long, Watcher> watchers = new ConcurrentHashMap<>();
  private final AtomicLong nextId = new AtomicLong();
  private final Queue<WatchResponse> queue = new ConcurrentLinkedQueue<>();
  private final AtomicInteger queued = new AtomicInteger();
  private final AtomicBoolean draining = new AtomicBoolean();
  private final AtomicBoolean drainScheduled = new AtomicBoolean();
  private final AtomicBoolean closed = new AtomicBoolean();

  public WatchStream(WatchHub hub, StreamObserver<WatchResponse> out, LongFunction<ResponseHeader> header, Executor sendExecutor) {
    this.hub = hub;
    this.out = (ServerCallStreamObserver<WatchResponse>) out;
    this.header = header;
    this.sendExecutor = sendExecutor;
    this.out.setOnReadyHandler(this::scheduleDrain);
    this.out.setOnCancelHandler(this::closeWatchers);
  }

  @Override
  public void onNext(WatchRequest request) {
    switch (request.getRequestUnionCase()) {
      case CREATE_REQUEST -> create(request.getCreateRequest());
      case CANCEL_REQUEST -> cancel(request.getCancelRequest());
      case PROGRESS_REQUEST -> hub.atPublishedRevision(rev -> enqueue(WatchResponse.newBuilder()
          .setHeader(header.apply(rev)).setWatchId(-1).build()));
      default -> { }
    }
  }

  private void create(WatchCreateRequest r) {
    long requested = clientChosenId(r);
    long id = requested > 0 ? requested : nextFreeId();
    Watcher w = new Watcher(id, r, this);
    if (watchers.putIfAbsent(id, w) != null) {
      enqueue(WatchResponse.newBuilder().setHeader(header.apply(0)).setWatchId(id).setCreated(true)
          .setCanceled(true).setCancelReason("mvcc: duplicate watch ID provided").build());
      return;
    }
    // The created response goes first, then whatever history the watcher replays.
    hub.atPublishedRevision(rev -> enqueue(WatchResponse.newBuilder()
        .setHeader(header.apply(rev)).setWatchId(id).setCreated(true).build()));
    try {
      hub.start(w, r.getStartRevision());
    } catch (KvException compacted) {
      watchers.remove(id);
      cancelCompacted(id, hub.compactRevision());
    }
  }

  /**
   * etcd's {@code WatchCreateRequest.watch_id} (field 7) is missing from the rpc.proto jetcd ships,
   * so a client-chosen ID arrives as an unknown varint field.
   */
  private static long clientChosenId(WatchCreateRequest r) {
    var field = r.getUnknownFields().getField(7);
    return field == null || field.getVarintList().isEmpty() ? 0 : field.getVarintList().get(0);
  }

  private long nextFreeId() {
    long id;
    do {
      id = nextId.getAndIncrement();
    } while (watchers.containsKey(id));
    return id;
  }

  private void cancel(WatchCancelRequest r) {
    Watcher w = watchers.remove(r.getWatchId());
    if (w != null) {
      hub.unregister(w);
      enqueue(WatchResponse.newBuilder().setHeader(header.apply(0)).setWatchId(w.id).setCanceled(true).build());
    }
  }

  /** The watcher's start (or its history) was compacted: etcd's canceled response. */
  void cancelCompacted(long watchId, long compactRevision) {
    watchers.remove(watchId);
    enqueue(WatchResponse.newBuilder().setHeader(header.apply(0)).setWatchId(watchId)
        .setCanceled(true).setCompactRevision(compactRevision)
        .setCancelReason("etcdserver: mvcc: required revision has been compacted").build());
  }

  void sendEvents(long watchId, long revision, List<Event> events) {
    enqueue(WatchResponse.newBuilder().setHeader(eventHeader(revision)).setWatchId(watchId).addAllEvents(events).build());
  }

  /** The header of a revision's events, made once for all the watchers of this stream it goes to. */
  private ResponseHeader eventHeader(long revision) {
    ResponseHeader last = lastEventHeader;
    if (last == null || last.getRevision() != revision) {
      last = header.apply(revision);
      lastEventHeader = last;
    }
    return last;
  }

  void sendProgress(long watchId, long revision) {
    enqueue(WatchResponse.newBuilder().setHeader(header.apply(revision)).setWatchId(watchId).build());
  }

  private void enqueue(WatchResponse response) {
    if (closed.get()) {
      return;
    }
    if (queued.incrementAndGet() > MAX_QUEUED) {
      LOG.warn("watch stream fell {} responses behind; ending it so its client resumes", MAX_QUEUED);
      fail(Status.RESOURCE_EXHAUSTED.withDescription("etcdserver: watch stream too slow: resume from the last revision received"));
      return;
    }
    queue.add(response);
    scheduleDrain();
  }

  /**
   * Schedules one drain task however many responses are enqueued before it runs (a revision
   * delivered to a hundred watchers of this stream used to submit up to a hundred tasks).
   */
  private void scheduleDrain() {
    if (!closed.get() && drainScheduled.compareAndSet(false, true)) {
      sendExecutor.execute(this::drain);
    }
  }

  private void drain() {
    drainScheduled.set(false);
    while (draining.compareAndSet(false, true)) {
      try {
        while (!closed.get() && out.isReady()) {
          WatchResponse r = queue.poll();
          if (r == null) {
            break;
          }
          queued.decrementAndGet();
          out.onNext(r);
        }
      } catch (RuntimeException e) {
        LOG.debug("watch stream send failed", e);
        closeWatchers();
        return;
      } finally {
        draining.set(false);
      }
      if (queue.isEmpty() || !out.isReady()) {
        return;
      }
    }
  }

  private void fail(Status status) {
    closeWatchers();
    sendExecutor.execute(() -> {
      try {
        out.onError(status.asRuntimeException());
      } catch (RuntimeException ignored) {
        // the call is already gone
      }
    });
  }

  private void closeWatchers() {
    if (closed.compareAndSet(false, true)) {
      watchers.values().forEach(hub::unregister);
      watchers.clear();
      queue.clear();
    }
  }

  @Override
  public void onError(Throwable t) {
    closeWatchers();
  }

  @Override
  public void onCompleted() {
    closeWatchers();
    sendExecutor.execute(() -> {
      try {
        out.onCompleted();
      } catch (RuntimeException ignored) {
        // the call is already gone
      }
    });
  }
}
