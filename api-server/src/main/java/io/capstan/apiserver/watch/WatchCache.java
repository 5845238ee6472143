package io.capstan.apiserver.watch;

import com.google.protobuf.ByteString;
import com.google.protobuf.Message;
import io.capstan.api.meta.v1.ObjectMeta;
import io.capstan.apiserver.storage.ApiException;
import io.capstan.apiserver.storage.EtcdClient;
import io.capstan.apiserver.storage.StoredObjects;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.etcd.jetcd.api.WatchCreateRequest;
import io.etcd.jetcd.api.WatchGrpc;
import io.etcd.jetcd.api.WatchRequest;
import io.etcd.jetcd.api.WatchResponse;
import io.grpc.stub.StreamObserver;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArraySet;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One resource's objects in memory, kept current by a single etcd watch, with a bounded window
 * of recent events: any number of API watchers cost the kvstore one watch (as Kubernetes'
 * cacher). A watch from a version still in the window replays from there; an older one fails
 * with Expired (410 / OUT_OF_RANGE) and the client relists.
 */
public final class WatchCache implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(WatchCache.class);

  /**
   * A change as API watchers see it; {@code revision} is the object's new resourceVersion. Its
   * encodings (protobuf for gRPC watchers, a JSON line for REST ones) are made once, by the first
   * watcher that needs them, and shared by the rest: a thousand watchers of a resource cost one
   * serialization per event.
   */
  public static final class ObjectEvent {
    private final String type;
    private final Message object;
    private final long revision;
    private volatile com.google.protobuf.ByteString bytes;
    private volatile byte[] jsonLine;

    public ObjectEvent(String type, Message object, long revision) {
      this.type = type;
      this.object = object;
      this.revision = revision;
    }

    public String type() {
      return type;
    }

    public Message object() {
      return object;
    }

    public long revision() {
      return revision;
    }

    /** The object's protobuf encoding. */
    public com.google.protobuf.ByteString bytes() {
      com.google.protobuf.ByteString b = bytes;
      if (b == null) {
        b = object.toByteString();
        bytes = b;
      }
      return b;
    }

    /** {@code encoder}'s rendering of this event, made once (the encoder must not depend on the watcher). */
    public byte[] jsonLine(java.util.function.Function<ObjectEvent, byte[]> encoder) {
      byte[] j = jsonLine;
      if (j == null) {
        j = encoder.apply(this);
        jsonLine = j;
      }
      return j;
    }
  }

  /** Receives events; returns false to be dropped (its stream is gone). */
  public interface Listener {
    boolean onEvent(ObjectEvent e);
  }

  private final EtcdClient etcd;
  private final String prefix;
  private final Message prototype;
  private final int capacity;
  private final Map<String, Message> state = new TreeMap<>();
  private final Deque<ObjectEvent> window = new ArrayDeque<>();
  private final Set<Subscription> subscriptions = new CopyOnWriteArraySet<>();
  private long revision;
  /** Watches from versions below this cannot be served from the window. */
  private long oldestServable;
  private volatile StreamObserver<WatchRequest> etcdWatch;
  private volatile boolean closed;

  private record Subscription(Predicate<Message> filter, Listener listener) {}

  public WatchCache(EtcdClient etcd, String prefix, Message prototype, int capacity) {
    this.etcd = etcd;
    this.prefix = prefix;
    this.prototype = prototype;
    this.capacity = capacity;
  }

  /** Lists the prefix and starts the etcd watch after it. */
  public synchronized WatchCache start() {
    relist();
    return this;
  }

  private synchronized void relist() {
    RangeResponse r = etcd.call(ch -> KVGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS)
        .range(RangeRequest.newBuilder().setKey(bs(prefix)).setRangeEnd(StoredObjects.prefixEnd(prefix)).build()));
    state.clear();
    window.clear();
    for (KeyValue kv : r.getKvsList()) {
      state.put(kv.getKey().toString(StandardCharsets.UTF_8), decode(kv));
    }
    revision = r.getHeader().getRevision();
    oldestServable = revision;
    watchFrom(revision + 1);
  }

  /**
   * Opens the etcd watch. It runs in the root gRPC context: a cache is often created inside a
   * request's handler, and a stream opened in that call's context would be cancelled as soon as
   * the request completed.
   */
  private void watchFrom(long start) {
    if (closed) {
      return;
    }
    io.grpc.Context previous = io.grpc.Context.ROOT.attach();
    try {
      openWatch(start);
    } finally {
      io.grpc.Context.ROOT.detach(previous);
    }
  }

  private void openWatch(long start) {
    StreamObserver<WatchRequest> req = WatchGrpc.newStub(etcd.channel()).watch(new StreamObserver<>() {
      @Override
      public void onNext(WatchResponse r) {
        if (r.getCompactRevision() > 0 || r.getCanceled()) {
          LOG.info("watch cache {}: etcd watch canceled (compacted at {}); relisting", prefix, r.getCompactRevision());
          expireAll();
          relist();
          return;
        }
        if (r.getEventsCount() > 0) {
          apply(r.getEventsList());
        }
      }

      @Override
      public void onError(Throwable t) {
        if (!closed) {
          LOG.info("watch cache {}: etcd watch failed ({}); resuming", prefix, t.toString());
          resume();
        }
      }

      @Override
      public void onCompleted() {
        if (!closed) {
          resume();
        }
      }
    });
    etcdWatch = req;
    req.onNext(WatchRequest.newBuilder().setCreateRequest(WatchCreateRequest.newBuilder()
        .setKey(bs(prefix)).setRangeEnd(StoredObjects.prefixEnd(prefix)).setStartRevision(start).setPrevKv(true)).build());
  }

  /** Re-creates the etcd watch after the last seen revision, after a pause, off the callback thread. */
  private void resume() {
    long from;
    synchronized (this) {
      from = revision + 1;
    }
    java.util.concurrent.CompletableFuture.delayedExecutor(100, TimeUnit.MILLISECONDS).execute(() -> watchFrom(from));
  }

  private synchronized void apply(List<Event> events) {
    for (Event e : events) {
      String key = e.getKv().getKey().toString(StandardCharsets.UTF_8);
      long rev = e.getKv().getModRevision();
      ObjectEvent oe;
      if (e.getType() == Event.EventType.DELETE) {
        Message old = e.hasPrevKv() ? decode(e.getPrevKv()) : state.get(key);
        state.remove(key);
        if (old == null) {
          continue;
        }
        oe = new ObjectEvent("DELETED", StoredObjects.withResourceVersion(old, rev), rev);
      } else {
        Message obj = decode(e.getKv());
        boolean existed = state.put(key, obj) != null;
        oe = new ObjectEvent(existed ? "MODIFIED" : "ADDED", obj, rev);
      }
      revision = Math.max(revision, rev);
      window.addLast(oe);
      while (window.size() > capacity) {
        ObjectEvent dropped = window.removeFirst();
        oldestServable = dropped.revision();
      }
      for (Subscription s : subscriptions) {
        deliver(s, oe);
      }
    }
  }

  private void deliver(Subscription s, ObjectEvent e) {
    if (s.filter().test(e.object()) && !s.listener().onEvent(e)) {
      subscriptions.remove(s);
    }
  }

  private synchronized void expireAll() {
    for (Subscription s : subscriptions) {
      s.listener().onEvent(new ObjectEvent("ERROR", null, revision));
    }
    subscriptions.clear();
  }

  /**
   * Starts delivering events after {@code fromVersion} to {@code listener}; 0 means "now", first
   * as synthetic ADDED events of every current object. Returns the subscription's handle.
   *
   * @throws ApiException Expired (410) if {@code fromVersion} is older than the event window
   */
  public synchronized Runnable watch(long fromVersion, Predicate<Message> filter, Listener listener) {
    Subscription s = new Subscription(filter, listener);
    if (fromVersion == 0) {
      for (Message m : state.values()) {
        if (filter.test(m) && !listener.onEvent(new ObjectEvent("ADDED", m, StoredObjects.resourceVersion(m)))) {
          return () -> { };
        }
      }
    } else {
      if (fromVersion < oldestServable) {
        throw ApiException.expired("too old resource version: " + fromVersion + " (" + oldestServable + ")");
      }
      for (ObjectEvent e : window) {
        if (e.revision() > fromVersion && filter.test(e.object()) && !listener.onEvent(e)) {
          return () -> { };
        }
      }
    }
    subscriptions.add(s);
    return () -> subscriptions.remove(s);
  }

  /** The newest version the cache has seen (for BOOKMARK events). */
  public synchronized long revision() {
    return revision;
  }

  /**
   * Runs {@code action} with the newest version while no event is being delivered, so whatever it
   * sends to a watcher (a BOOKMARK) is ordered exactly among the events: after every event at or
   * below the version, before every later one.
   */
  public synchronized void atRevision(java.util.function.LongConsumer action) {
    action.accept(revision);
  }

  /** The current object stored under {@code key}, or null if the cache has none. */
  public synchronized Message get(String key) {
    return state.get(key);
  }

  /** Current objects, in key order (a list served from memory). */
  public synchronized List<Message> list(Predicate<Message> filter) {
    List<Message> out = new ArrayList<>();
    for (Message m : state.values()) {
      if (filter.test(m)) {
        out.add(m);
      }
    }
    return out;
  }

  private Message decode(KeyValue kv) {
    return StoredObjects.decode(kv, prototype);
  }

  private static ByteString bs(String s) {
    return ByteString.copyFromUtf8(s);
  }

  @Override
  public void close() {
    closed = true;
    StreamObserver<WatchRequest> w = etcdWatch;
    if (w != null) {
      try {
        w.onCompleted();
      } catch (RuntimeException ignored) {
        // already gone
      }
    }
  }
}
