package io.capstan.apiserver.grpc;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import io.capstan.api.core.v1.Pod;
import io.capstan.api.meta.v1.ObjectMeta;
import io.capstan.api.server.v1.ApiServerGrpc;
import io.capstan.api.server.v1.BindRequest;
import io.capstan.api.server.v1.CreateRequest;
import io.capstan.api.server.v1.DeleteRequest;
import io.capstan.api.server.v1.DeleteResponse;
import io.capstan.api.server.v1.GetRequest;
import io.capstan.api.server.v1.ListRequest;
import io.capstan.api.server.v1.ListResponse;
import io.capstan.api.server.v1.RawObject;
import io.capstan.api.server.v1.ResourceRef;
import io.capstan.apiserver.registry.Registry;
import io.capstan.apiserver.registry.ResourceType;
import io.capstan.apiserver.storage.ApiException;
import io.capstan.apiserver.storage.EtcdClient;
import io.capstan.apiserver.storage.ObjectStore;
import io.capstan.apiserver.storage.StoredObjects;
import io.capstan.apiserver.selection.Selectors;
import io.capstan.apiserver.validation.Strategies;
import io.capstan.apiserver.watch.WatchCache;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

/**
 * The api-server's gRPC service for components: generic CRUD over every registered kind, and Bind.
 * (Watch, Patch, UpdateStatus and validation/defaulting are the next steps of issue 3; they answer
 * UNIMPLEMENTED for now.)
 */
public final class ApiServerService extends ApiServerGrpc.ApiServerImplBase {
  /** Trailer key carrying the Kubernetes Status of a refusal, as protobuf bytes. */
  public static final Metadata.Key<byte[]> STATUS_KEY = Metadata.Key.of("capstan-status-bin", Metadata.BINARY_BYTE_MARSHALLER);
  static final int MAX_OBJECT_BYTES = 1536 * 1024;

  private final Registry registry;
  private final EtcdClient etcd;
  private final Map<ResourceType, ObjectStore<Message>> stores = new ConcurrentHashMap<>();
  private final Map<ResourceType, WatchCache> caches = new ConcurrentHashMap<>();
  private final int watchWindow;

  /** @param watchWindow events kept per resource for watches that resume from a past version */
  public ApiServerService(Registry registry, EtcdClient etcd, int watchWindow) {
    this(registry, etcd, watchWindow, java.time.Duration.ofSeconds(Long.getLong("capstan.watch.bookmark-seconds", 60)));
  }

  /** @param bookmarkInterval how often a watch that allows bookmarks gets one (Kubernetes: about a minute) */
  public ApiServerService(Registry registry, EtcdClient etcd, int watchWindow, java.time.Duration bookmarkInterval) {
    this.registry = registry;
    this.etcd = etcd;
    this.watchWindow = watchWindow;
    this.bookmarkInterval = bookmarkInterval;
  }

  private final java.time.Duration bookmarkInterval;
  private final java.util.concurrent.ScheduledExecutorService bookmarkTimer =
      io.capstan.common.DaemonThreads.scheduler("watch-bookmarks");

  private WatchCache cache(ResourceType t) {
    return caches.computeIfAbsent(t, k -> new WatchCache(etcd, store(k).prefix(""), k.prototype(), watchWindow).start());
  }

  /** Stops the watch caches' etcd watches. */
  public void close() {
    bookmarkTimer.shutdownNow();
    caches.values().forEach(WatchCache::close);
  }

  /**
   * Streams ADDED / MODIFIED / DELETED events of a resource (optionally one namespace and one
   * name), from the watch cache. From version "" or "0": the current objects first, as ADDED.
   * A version older than the cache's window fails with OUT_OF_RANGE (Expired): relist.
   */
  /**
   * Subscribes {@code listener} to a resource's events (optionally one namespace and one name,
   * filtered by label and field selectors) from the watch cache; returns the cancel action.
   *
   * @throws ApiException Expired (410) for a version older than the cache's window
   */
  public Runnable watchObjects(ResourceRef ref, String resourceVersion, String labelSelector, String fieldSelector,
      WatchCache.Listener listener) {
    ResourceType t = type(ref);
    long from;
    try {
      from = resourceVersion.isEmpty() ? 0 : Long.parseLong(resourceVersion);
    } catch (NumberFormatException e) {
      throw ApiException.badRequest("invalid resourceVersion \"" + resourceVersion + "\"");
    }
    String ns = namespaceOf(t, ref);
    String name = ref.getName();
    java.util.function.Predicate<Message> filter = ((java.util.function.Predicate<Message>) m ->
        (ns.isEmpty() || meta(m).getNamespace().equals(ns)) && (name.isEmpty() || meta(m).getName().equals(name)))
        .and(Selectors.labels(labelSelector)).and(Selectors.fields(fieldSelector, t.kind()));
    return cache(t).watch(from, filter, listener);
  }

  /** Runs {@code action} with the newest version of a resource's watch cache, ordered among its events (for bookmarks). */
  public void atCachedRevision(ResourceRef ref, java.util.function.LongConsumer action) {
    cache(type(ref)).atRevision(action);
  }

  /**
   * Streams ADDED / MODIFIED / DELETED events of a resource from the watch cache. From version
   * "" or "0": the current objects first, as ADDED. A version older than the cache's window
   * fails with OUT_OF_RANGE (Expired): relist.
   */
  @Override
  public void watch(io.capstan.api.server.v1.WatchRequest req, StreamObserver<io.capstan.api.server.v1.WatchEvent> out) {
    io.grpc.stub.ServerCallStreamObserver<io.capstan.api.server.v1.WatchEvent> call =
        (io.grpc.stub.ServerCallStreamObserver<io.capstan.api.server.v1.WatchEvent>) out;
    try {
      Runnable cancel = watchObjects(req.getRef(), req.getResourceVersion(), req.getLabelSelector(), req.getFieldSelector(), e -> {
        if (call.isCancelled()) {
          return false;
        }
        synchronized (call) {
          if (e.type().equals("ERROR")) {
            call.onError(toStatus(ApiException.expired("the watch cache was reset; relist")));
            return false;
          }
          call.onNext(io.capstan.api.server.v1.WatchEvent.newBuilder().setType(e.type()).setObject(RawObject.newBuilder().setData(e.bytes()))
              .setResourceVersion(Long.toString(e.revision())).build());
        }
        return true;
      });
      if (req.getAllowBookmarks()) {
        ResourceType t = type(req.getRef());
        long periodMs = bookmarkInterval.toMillis();
        java.util.concurrent.ScheduledFuture<?> bookmarks = bookmarkTimer.scheduleAtFixedRate(
            () -> sendBookmark(call, t), periodMs, periodMs, java.util.concurrent.TimeUnit.MILLISECONDS);
        call.setOnCancelHandler(() -> {
          bookmarks.cancel(false);
          cancel.run();
        });
      } else {
        call.setOnCancelHandler(cancel);
      }
    } catch (ApiException e) {
      out.onError(toStatus(e));
    }
  }

  /**
   * A BOOKMARK: "this stream has delivered everything up to this version", so a client can resume
   * from it rather than from its last event. It is sent under the watch cache's lock, the one the
   * cache delivers events under, so it follows every event at or below its version and precedes
   * every later one. The object is an empty one of the kind carrying only
   * {@code metadata.resourceVersion}, as in Kubernetes.
   */
  private void sendBookmark(io.grpc.stub.ServerCallStreamObserver<io.capstan.api.server.v1.WatchEvent> call, ResourceType t) {
    if (call.isCancelled()) {
      return;
    }
    cache(t).atRevision(rv -> {
      Message empty = withMeta(t.prototype(), ObjectMeta.newBuilder().setResourceVersion(Long.toString(rv)).build());
      synchronized (call) {
        try {
          call.onNext(io.capstan.api.server.v1.WatchEvent.newBuilder().setType("BOOKMARK").setObject(raw(empty))
              .setResourceVersion(Long.toString(rv)).build());
        } catch (RuntimeException closed) {
          // the stream ended meanwhile (errored or cancelled): nothing to bookmark
        }
      }
    });
  }

  /** The registered kind a reference names; 404 if none. */
  public ResourceType type(ResourceRef ref) {
    return registry.find(ref.getGroup(), ref.getResource()).orElseThrow(() -> ApiException.of(404, "NotFound", "the server could not find the requested resource (" + ref.getResource()
            + (ref.getGroup().isEmpty() ? "" : "." + ref.getGroup()) + ")"));
  }

  private ObjectStore<Message> store(ResourceType t) {
    return stores.computeIfAbsent(t, k -> new ObjectStore<>(etcd, k.group(), k.resource(), k.prototype()));
  }

  private static String namespaceOf(ResourceType t, ResourceRef ref) {
    return t.namespaced() ? ref.getNamespace() : "";
  }

  private static <T> void answer(StreamObserver<T> out, Supplier<T> call) {
    T result;
    try {
      result = call.get();
    } catch (ApiException e) {
      out.onError(toStatus(e));
      return;
    } catch (StatusRuntimeException e) {
      out.onError(e);
      return;
    }
    out.onNext(result);
    out.onCompleted();
  }

  /** Kubernetes code to gRPC code, with the Status in the trailers. */
  public static StatusRuntimeException toStatus(ApiException e) {
    Status.Code code = switch (e.code()) {
      case 400, 422 -> Status.Code.INVALID_ARGUMENT;
      case 404 -> Status.Code.NOT_FOUND;
      case 409 -> e.reason().equals("AlreadyExists") ? Status.Code.ALREADY_EXISTS : Status.Code.ABORTED;
      case 410 -> Status.Code.OUT_OF_RANGE;
      case 429 -> Status.Code.RESOURCE_EXHAUSTED;
      case 503 -> Status.Code.UNAVAILABLE;
      default -> Status.Code.INTERNAL;
    };
    Metadata trailers = new Metadata();
    trailers.put(STATUS_KEY, e.status().toByteArray());
    return Status.fromCode(code).withDescription(e.getMessage()).asRuntimeException(trailers);
  }

  private static Message parse(ResourceType t, RawObject raw) {
    if (raw.getData().size() > MAX_OBJECT_BYTES) {
      throw ApiException.of(413, "RequestEntityTooLarge", "the object is larger than " + MAX_OBJECT_BYTES + " bytes");
    }
    Message m;
    try {
      m = t.prototype().getParserForType().parseFrom(raw.getData());
    } catch (InvalidProtocolBufferException e) {
      throw ApiException.badRequest("the object is not a valid " + t.kind() + " message: " + e.getMessage());
    }
    // An object of another kind sent to this resource's path (a ConfigMap posted to namespaces)
    // is refused, not reinterpreted; empty kind and apiVersion take the resource's.
    String kind = (String) m.getField(m.getDescriptorForType().findFieldByName("kind"));
    String apiVersion = (String) m.getField(m.getDescriptorForType().findFieldByName("api_version"));
    if (!kind.isEmpty() && !kind.equals(t.kind())) {
      throw ApiException.badRequest("the kind of the object (" + kind + ") does not match the resource it was sent to ("
          + t.resource() + ", kind " + t.kind() + ")");
    }
    if (!apiVersion.isEmpty() && !apiVersion.equals(t.apiVersion())) {
      throw ApiException.badRequest("the API version in the data (" + apiVersion + ") does not match the expected API version ("
          + t.apiVersion() + ")");
    }
    return m;
  }

  private static ObjectMeta meta(Message m) {
    return StoredObjects.meta(m);
  }

  private static Message withMeta(Message m, ObjectMeta meta) {
    return StoredObjects.withMeta(m, meta);
  }

  private static RawObject raw(Message m) {
    return RawObject.newBuilder().setData(m.toByteString()).build();
  }

  @Override
  public void create(CreateRequest req, StreamObserver<RawObject> out) {
    answer(out, () -> {
      ResourceType t = type(req.getRef());
      Message obj = parse(t, req.getObject());
      ObjectMeta m = meta(obj);
      String ns = namespaceOf(t, req.getRef());
      if (t.namespaced()) {
        if (!m.getNamespace().isEmpty() && !m.getNamespace().equals(ns)) {
          throw ApiException.badRequest("the namespace of the provided object does not match the namespace sent on the request");
        }
        if (ns.isEmpty()) {
          throw ApiException.badRequest("a namespace is required to create " + t.resource());
        }
      }
      String name = m.getName();
      if (name.isEmpty() && !m.getGenerateName().isEmpty()) {
        name = m.getGenerateName() + UUID.randomUUID().toString().substring(0, 5);
      }
      if (name.isEmpty()) {
        throw ApiException.of(422, "Invalid", t.kind() + " is invalid: metadata.name: Required value: name or generateName is required");
      }
      ObjectMeta fixed = m.toBuilder().setName(name).setNamespace(ns).setUid(UUID.randomUUID().toString())
          .setCreationTimestamp(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString()).setGeneration(1)
          .clearResourceVersion().clearDeletionTimestamp().build();
      Message typed = withMeta(obj, fixed).toBuilder()
          .setField(obj.getDescriptorForType().findFieldByName("api_version"), t.apiVersion())
          .setField(obj.getDescriptorForType().findFieldByName("kind"), t.kind()).build();
      typed = Strategies.defaults(typed);
      Strategies.validate(typed, t.kind(), t.namespaced());
      if (!t.namespaced()) {
        return raw(store(t).create(typed));
      }
      return raw(createInActiveNamespace(t, ns, typed));
    });
  }

  @Override
  public void get(GetRequest req, StreamObserver<RawObject> out) {
    answer(out, () -> {
      ResourceType t = type(req.getRef());
      return raw(store(t).get(namespaceOf(t, req.getRef()), req.getRef().getName()));
    });
  }

  @Override
  public void list(ListRequest req, StreamObserver<ListResponse> out) {
    answer(out, () -> {
      ResourceType t = type(req.getRef());
      java.util.function.Predicate<Message> filter = Selectors.labels(req.getLabelSelector())
          .and(Selectors.fields(req.getFieldSelector(), t.kind()));
      String ns = namespaceOf(t, req.getRef());
      if (req.getResourceVersion().equals("0") && req.getContinue().isEmpty()) {
        // resourceVersion=0: "any recent state" — served from the watch cache, as Kubernetes does
        // (and, as there, without pagination)
        WatchCache cache = cache(t);
        ListResponse.Builder b = ListResponse.newBuilder();
        b.getMetadataBuilder().setResourceVersion(Long.toString(cache.revision()));
        cache.list(filter.and(m -> ns.isEmpty() || meta(m).getNamespace().equals(ns))).forEach(i -> b.addItems(raw(i)));
        return b.build();
      }
      ObjectStore.Page<Message> page = store(t).list(ns, req.getLimit(), req.getContinue(), filter);
      ListResponse.Builder b = ListResponse.newBuilder();
      b.getMetadataBuilder().setResourceVersion(Long.toString(page.revision())).setContinue(page.continueToken());
      page.items().forEach(i -> b.addItems(raw(i)));
      return b.build();
    });
  }

  @Override
  public void update(io.capstan.api.server.v1.UpdateRequest req, StreamObserver<RawObject> out) {
    answer(out, () -> {
      ResourceType t = type(req.getRef());
      Message obj = parse(t, req.getObject());
      if (!meta(obj).getName().equals(req.getRef().getName())) {
        throw ApiException.badRequest("the name of the object (" + meta(obj).getName()
            + ") does not match the name on the URL (" + req.getRef().getName() + ")");
      }
      Message next = Strategies.defaults(withMeta(obj, meta(obj).toBuilder().setNamespace(namespaceOf(t, req.getRef())).build()));
      // The write below is conditional on the client's resourceVersion, so reading the stored
      // object first is safe: if it changed in between, the write fails with a conflict.
      Message current = store(t).get(namespaceOf(t, req.getRef()), req.getRef().getName());
      if (t.hasStatus()) {
        // status changes go through UpdateStatus; an update keeps the stored status
        var statusField = t.prototype().getDescriptorForType().findFieldByName("status");
        next = next.toBuilder().setField(statusField, current.getField(statusField)).build();
      }
      next = Strategies.prepareUpdate(current, next, t.kind());
      Strategies.validate(next, t.kind(), t.namespaced());
      Message stored = store(t).update(next);
      if (!meta(stored).getDeletionTimestamp().isEmpty() && finalizers(stored).isEmpty()) {
        // the last finalizer is gone from an object being deleted: remove it now
        store(t).delete(meta(stored).getNamespace(), meta(stored).getName(), meta(stored).getResourceVersion());
      }
      return raw(stored);
    });
  }

  /**
   * Writes only the status of an object (the status subresource): everything else is kept as
   * stored. Conflict (409) if the object changed since the given resourceVersion.
   */
  @Override
  public void updateStatus(io.capstan.api.server.v1.UpdateRequest req, StreamObserver<RawObject> out) {
    answer(out, () -> {
      ResourceType t = type(req.getRef());
      if (!t.hasStatus()) {
        throw ApiException.notFound(t.resource() + "/status", req.getRef().getName());
      }
      Message incoming = parse(t, req.getObject());
      var statusField = t.prototype().getDescriptorForType().findFieldByName("status");
      Message current = store(t).get(namespaceOf(t, req.getRef()), req.getRef().getName());
      Message next = current.toBuilder().setField(statusField, incoming.getField(statusField)).build();
      next = withMeta(next, meta(next).toBuilder().setResourceVersion(meta(incoming).getResourceVersion()).build());
      return raw(store(t).update(next));
    });
  }

  /** A merge, strategic merge or JSON patch of an object (or of its status), retried on conflicts like Kubernetes'. */
  @Override
  public void patch(io.capstan.api.server.v1.PatchRequest req, StreamObserver<RawObject> out) {
    answer(out, () -> {
      ResourceType t = type(req.getRef());
      String ns = namespaceOf(t, req.getRef());
      var statusField = t.prototype().getDescriptorForType().findFieldByName("status");
      return raw(store(t).guaranteedUpdate(ns, req.getRef().getName(), current -> {
        Message patched = Patches.apply(current, req.getMergePatch(), req.getPatchType());
        ObjectMeta before = meta(current);
        ObjectMeta after = meta(patched);
        if (!after.getName().equals(before.getName()) || !after.getNamespace().equals(before.getNamespace())
            || !after.getUid().equals(before.getUid())) {
          throw ApiException.badRequest("a patch cannot change metadata.name, metadata.namespace or metadata.uid");
        }
        if (statusField != null) {
          // a patch of the object leaves its status alone; a status patch changes only the status
          patched = req.getStatus()
              ? current.toBuilder().setField(statusField, patched.getField(statusField)).build()
              : patched.toBuilder().setField(statusField, current.getField(statusField)).build();
        }
        Message next = Strategies.prepareUpdate(current, Strategies.defaults(patched), t.kind());
        Strategies.validate(next, t.kind(), t.namespaced());
        return next;
      }));
    });
  }

  private ResourceType namespaces() {
    return registry.find("", "namespaces").orElseThrow();
  }

  /**
   * Objects go only into namespaces that exist and are not being deleted. As Kubernetes'
   * NamespaceLifecycle admission does, this reads the namespace from the watch cache (the kvstore
   * only if the cache does not have it yet). Unlike Kubernetes, the cache's lag is no hole: the
   * create is one transaction conditional on the namespace still being at the version read, and
   * if it changed (say, its deletion began a moment ago), the stored namespace is read and
   * checked again. A create costs one kvstore round trip, not two.
   */
  private Message createInActiveNamespace(ResourceType t, String ns, Message object) {
    ObjectStore<Message> namespaces = store(namespaces());
    String key = namespaces.key("", ns);
    Message cached = cache(namespaces()).get(key);
    Message n = cached != null ? cached : namespaces.get("", ns);
    for (int attempt = 0; ; attempt++) {
      io.capstan.api.core.v1.Namespace namespace = (io.capstan.api.core.v1.Namespace) n;
      if (!namespace.getMetadata().getDeletionTimestamp().isEmpty() || namespace.getStatus().getPhase().equals("Terminating")) {
        throw ApiException.of(403, "Forbidden", "unable to create new content in namespace " + ns
            + " because it is being terminated");
      }
      try {
        return store(t).create(object, new ObjectStore.Guard(key, Long.parseLong(meta(n).getResourceVersion())));
      } catch (ObjectStore.GuardChanged changed) {
        if (attempt >= 10) {
          throw ApiException.of(409, "Conflict", "namespace " + ns + " keeps changing; try again");
        }
        n = namespaces.get("", ns); // 404 if it is gone
      }
    }
  }

  /** Creates the namespaces Kubernetes clusters start with, if they are missing. */
  public void ensureInitialNamespaces() {
    for (String name : new String[] {"default", "kube-system", "kube-public", "kube-node-lease"}) {
      io.capstan.api.core.v1.Namespace ns = (io.capstan.api.core.v1.Namespace) Strategies.defaults(
          io.capstan.api.core.v1.Namespace.newBuilder().setApiVersion("v1").setKind("Namespace")
              .setMetadata(ObjectMeta.newBuilder().setName(name).setUid(UUID.randomUUID().toString())
                  .setCreationTimestamp(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString())).build());
      try {
        store(namespaces()).create(ns);
      } catch (ApiException e) {
        if (!e.reason().equals("AlreadyExists")) {
          throw e;
        }
      }
    }
  }

  private static java.util.List<String> finalizers(Message m) {
    java.util.List<String> out = new java.util.ArrayList<>(meta(m).getFinalizersList());
    if (m instanceof io.capstan.api.core.v1.Namespace ns) {
      out.addAll(ns.getSpec().getFinalizersList());
    }
    return out;
  }

  @Override
  public void delete(DeleteRequest req, StreamObserver<DeleteResponse> out) {
    answer(out, () -> {
      ResourceType t = type(req.getRef());
      String ns = namespaceOf(t, req.getRef());
      String name = req.getRef().getName();
      Message current = store(t).get(ns, name);
      if (!req.getPreconditionUid().isEmpty() && !req.getPreconditionUid().equals(meta(current).getUid())) {
        throw ApiException.conflict(t.resource(), name);
      }
      // Pods on a node are deleted gracefully: the node agent stops them, then deletes with grace 0.
      long grace = 0;
      if (current instanceof Pod pod && !pod.getSpec().getNodeName().isEmpty()) {
        grace = req.hasGracePeriodSeconds() ? req.getGracePeriodSeconds() : pod.getSpec().getTerminationGracePeriodSeconds();
      }
      boolean pendingFinalizers = !finalizers(current).isEmpty();
      if (!pendingFinalizers && grace <= 0) {
        Message gone = store(t).delete(ns, name, req.getPreconditionResourceVersion());
        return DeleteResponse.newBuilder().setObject(raw(gone)).build();
      }
      long graceSeconds = grace;
      Message marked = store(t).guaranteedUpdate(ns, name, cur -> {
        ObjectMeta.Builder mb = meta(cur).toBuilder();
        if (mb.getDeletionTimestamp().isEmpty()) {
          mb.setDeletionTimestamp(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        }
        if (graceSeconds > 0) {
          mb.setDeletionGracePeriodSeconds(graceSeconds);
        }
        mb.putAnnotations("capstan.io/propagation-policy", req.getPropagationPolicy().isEmpty() ? "Background" : req.getPropagationPolicy());
        Message next = withMeta(cur, mb.build());
        if (next instanceof io.capstan.api.core.v1.Namespace nsObj) {
          next = nsObj.toBuilder().setStatus(nsObj.getStatus().toBuilder().setPhase("Terminating")).build();
        }
        return next;
      });
      return DeleteResponse.newBuilder().setObject(raw(marked)).setPending(true).build();
    });
  }

  /** Sets spec.nodeName of a pod only if it is still empty: of two binders exactly one wins. */
  @Override
  public void bind(BindRequest req, StreamObserver<RawObject> out) {
    answer(out, () -> {
      ResourceType t = type(req.getRef());
      if (!t.resource().equals("pods") || !t.group().isEmpty()) {
        throw ApiException.badRequest("only pods can be bound");
      }
      if (req.getNodeName().isEmpty()) {
        throw ApiException.of(422, "Invalid", "Binding is invalid: target.name: Required value");
      }
      Message bound = store(t).guaranteedUpdate(req.getRef().getNamespace(), req.getRef().getName(), current -> {
        Pod pod = (Pod) current;
        if (!req.getPodUid().isEmpty() && !req.getPodUid().equals(pod.getMetadata().getUid())) {
          throw ApiException.conflict("pods", pod.getMetadata().getName());
        }
        if (!pod.getSpec().getNodeName().isEmpty()) {
          throw ApiException.of(409, "Conflict", "pod " + pod.getMetadata().getName() + " is already assigned to node \""
              + pod.getSpec().getNodeName() + "\"");
        }
        return pod.toBuilder().setSpec(pod.getSpec().toBuilder().setNodeName(req.getNodeName())).build();
      });
      return raw(bound);
    });
  }
}
