package io.capstan.apiserver.storage;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import io.capstan.api.meta.v1.ObjectMeta;
import io.etcd.jetcd.api.Compare;
import io.etcd.jetcd.api.DeleteRangeRequest;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.TxnRequest;
import io.etcd.jetcd.api.TxnResponse;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Storage of one resource's objects in the etcd v3 API, with Kubernetes' rules: the key is
 * {@code /registry/<group>/<resource>/<namespace>/<name>} (core group written {@code core};
 * cluster-scoped kinds have no namespace segment), the value the object's protobuf bytes, and the
 * object's {@code metadata.resourceVersion} is the key's {@code mod_revision}. Create is a Txn on
 * {@code mod_revision == 0}; update and delete are Txns on {@code mod_revision == resourceVersion},
 * so concurrent writers never lose each other's changes.
 *
 * @param <T> the kind's message type; it has a {@code metadata} field of type ObjectMeta
 */
public final class ObjectStore<T extends Message> {
  private final EtcdClient etcd;
  private final String group;
  private final String resource;
  private final T prototype;
  private final FieldDescriptor metadataField;

  public ObjectStore(EtcdClient etcd, String group, String resource, T prototype) {
    this.etcd = etcd;
    this.group = group.isEmpty() ? "core" : group;
    this.resource = resource;
    this.prototype = prototype;
    this.metadataField = prototype.getDescriptorForType().findFieldByName("metadata");
    if (metadataField == null || !metadataField.getMessageType().equals(ObjectMeta.getDescriptor())) {
      throw new IllegalArgumentException(prototype.getDescriptorForType().getFullName() + " has no ObjectMeta metadata field");
    }
  }

  /** A page of a list: the objects, the revision it was read at, and a continue token if cut. */
  public record Page<T>(List<T> items, long revision, String continueToken) {}

  // ------------------------------------------------------------------ keys

  /** The key prefix of the resource's objects in one namespace ("": all of them). */
  public String prefix(String namespace) {
    StringBuilder b = new StringBuilder("/registry/").append(group).append('/').append(resource).append('/');
    if (!namespace.isEmpty()) {
      b.append(namespace).append('/');
    }
    return b.toString();
  }

  public String key(String namespace, String name) {
    return prefix(namespace) + name;
  }

  private static ByteString bs(String s) {
    return ByteString.copyFromUtf8(s);
  }

  public ObjectMeta meta(T object) {
    return StoredObjects.meta(object);
  }

  private T withMeta(T object, ObjectMeta meta) {
    return StoredObjects.withMeta(object, meta);
  }

  private T decode(KeyValue kv) {
    return StoredObjects.decode(kv, prototype);
  }

  private ByteString encode(T object) {
    // resourceVersion is the key's mod_revision: never stored inside the value
    return withMeta(object, meta(object).toBuilder().clearResourceVersion().build()).toByteString();
  }

  private KVGrpc.KVBlockingStub kv(io.grpc.Channel ch) {
    return KVGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  // ------------------------------------------------------------------ operations

  /** Stores a new object. Fails with AlreadyExists (409) if the name is taken. */
  public T create(T object) {
    return create(object, null);
  }

  /** A condition a create is made under: another stored key is still at the version read. */
  public record Guard(String key, long modRevision) {}

  /** Thrown when a create's {@link Guard} no longer holds; nothing was written. */
  public static final class GuardChanged extends RuntimeException {
    GuardChanged(String key) {
      super("changed since it was read: " + key, null, false, false);
    }
  }

  /**
   * Stores a new object if {@code guard} (when given) still holds, in one transaction: the object
   * is written only if its name is free and the guarded key was not changed since it was read.
   *
   * @throws ApiException AlreadyExists (409) if the name is taken
   * @throws GuardChanged if the guarded key changed (or is gone)
   */
  public T create(T object, Guard guard) {
    ObjectMeta m = meta(object);
    ByteString key = bs(key(m.getNamespace(), m.getName()));
    TxnRequest.Builder txn = TxnRequest.newBuilder()
        .addCompare(Compare.newBuilder().setKey(key).setTarget(Compare.CompareTarget.MOD)
            .setResult(Compare.CompareResult.EQUAL).setModRevision(0))
        .addSuccess(RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(key).setValue(encode(object))))
        .addFailure(RequestOp.newBuilder().setRequestRange(RangeRequest.newBuilder().setKey(key).setKeysOnly(true)));
    if (guard != null) {
      txn.addCompare(Compare.newBuilder().setKey(bs(guard.key())).setTarget(Compare.CompareTarget.MOD)
          .setResult(Compare.CompareResult.EQUAL).setModRevision(guard.modRevision()));
    }
    TxnResponse r = etcd.call(ch -> kv(ch).txn(txn.build()));
    if (!r.getSucceeded()) {
      if (guard == null || r.getResponses(0).getResponseRange().getKvsCount() > 0) {
        throw ApiException.alreadyExists(resource, m.getName());
      }
      throw new GuardChanged(guard.key());
    }
    return withMeta(object, m.toBuilder().setResourceVersion(Long.toString(r.getHeader().getRevision())).build());
  }

  /** The stored object. Fails with NotFound (404). */
  public T get(String namespace, String name) {
    RangeResponse r = etcd.call(ch -> kv(ch).range(RangeRequest.newBuilder().setKey(bs(key(namespace, name))).build()));
    if (r.getKvsCount() == 0) {
      throw ApiException.notFound(resource, name);
    }
    return decode(r.getKvs(0));
  }

  /**
   * Replaces an object if its {@code metadata.resourceVersion} is still the stored one; fails with
   * Conflict (409) if another write came first, NotFound (404) if it is gone. An empty
   * resourceVersion means an unconditional update (as Kubernetes allows for some kinds).
   */
  public T update(T object) {
    ObjectMeta m = meta(object);
    ByteString key = bs(key(m.getNamespace(), m.getName()));
    long expected = parseVersion(m.getResourceVersion());
    Compare.Builder cmp = Compare.newBuilder().setKey(key).setTarget(Compare.CompareTarget.MOD);
    if (expected > 0) {
      cmp.setResult(Compare.CompareResult.EQUAL).setModRevision(expected);
    } else {
      cmp.setResult(Compare.CompareResult.GREATER).setModRevision(0);
    }
    TxnRequest txn = TxnRequest.newBuilder().addCompare(cmp)
        .addSuccess(RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(key).setValue(encode(object))))
        .addFailure(RequestOp.newBuilder().setRequestRange(RangeRequest.newBuilder().setKey(key).setKeysOnly(true)))
        .build();
    TxnResponse r = etcd.call(ch -> kv(ch).txn(txn));
    if (!r.getSucceeded()) {
      if (r.getResponses(0).getResponseRange().getKvsCount() == 0) {
        throw ApiException.notFound(resource, m.getName());
      }
      throw ApiException.conflict(resource, m.getName());
    }
    return withMeta(object, m.toBuilder().setResourceVersion(Long.toString(r.getHeader().getRevision())).build());
  }

  /**
   * Read-modify-write that never loses a concurrent change (Kubernetes' GuaranteedUpdate): reads
   * the object, applies {@code change} and writes it conditionally on the version read; on a
   * conflict it reads again and reapplies. {@code change} may throw an ApiException to refuse
   * (for example Bind when the pod already has a node), which ends the loop.
   */
  public T guaranteedUpdate(String namespace, String name, java.util.function.UnaryOperator<T> change) {
    for (int attempt = 0; ; attempt++) {
      T current = get(namespace, name);
      T next = change.apply(current);
      next = withMeta(next, meta(next).toBuilder().setResourceVersion(meta(current).getResourceVersion()).build());
      try {
        return update(next);
      } catch (ApiException e) {
        if (!e.reason().equals("Conflict") || attempt >= 100) {
          throw e;
        }
      }
    }
  }

  /**
   * Removes an object, if {@code resourceVersion} (when not empty) is still the stored one.
   * Returns the object as it was. Fails with NotFound (404) or Conflict (409).
   */
  public T delete(String namespace, String name, String resourceVersion) {
    ByteString key = bs(key(namespace, name));
    long expected = parseVersion(resourceVersion);
    Compare.Builder cmp = Compare.newBuilder().setKey(key).setTarget(Compare.CompareTarget.MOD);
    if (expected > 0) {
      cmp.setResult(Compare.CompareResult.EQUAL).setModRevision(expected);
    } else {
      cmp.setResult(Compare.CompareResult.GREATER).setModRevision(0);
    }
    TxnRequest txn = TxnRequest.newBuilder().addCompare(cmp)
        .addSuccess(RequestOp.newBuilder().setRequestDeleteRange(DeleteRangeRequest.newBuilder().setKey(key).setPrevKv(true)))
        .addFailure(RequestOp.newBuilder().setRequestRange(RangeRequest.newBuilder().setKey(key).setKeysOnly(true)))
        .build();
    TxnResponse r = etcd.call(ch -> kv(ch).txn(txn));
    if (!r.getSucceeded()) {
      if (r.getResponses(0).getResponseRange().getKvsCount() == 0) {
        throw ApiException.notFound(resource, name);
      }
      throw ApiException.conflict(resource, name);
    }
    var deleted = r.getResponses(0).getResponseDeleteRange();
    if (deleted.getPrevKvsCount() == 0) {
      throw ApiException.notFound(resource, name);
    }
    return decode(deleted.getPrevKvs(0));
  }

  /**
   * Lists objects of a namespace (or of all namespaces with ""), at most {@code limit} (0: all),
   * consistently: a continued list reads at the revision of its first page, so a paginated list
   * is a snapshot. A continue token whose revision was compacted fails with Expired (410).
   */
  public Page<T> list(String namespace, long limit, String continueToken) {
    return list(namespace, limit, continueToken, x -> true);
  }

  /**
   * As {@link #list(String, long, String)}, returning only objects {@code filter} accepts. As in
   * Kubernetes, a page is filled: the store keeps reading (in growing chunks, at the list's
   * revision) until it has {@code limit} matches or reaches the end, and the continue token
   * resumes after the last object returned.
   */
  public Page<T> list(String namespace, long limit, String continueToken, java.util.function.Predicate<? super T> filter) {
    String prefix = prefix(namespace);
    ByteString start = bs(prefix);
    long revision = 0;
    if (continueToken != null && !continueToken.isEmpty()) {
      String[] parts = decodeContinue(continueToken);
      revision = Long.parseLong(parts[0]);
      start = bs(parts[1] + "\0");
    }
    List<T> items = new ArrayList<>();
    long chunk = limit;
    while (true) {
      RangeResponse r = range(start, prefix, revision, chunk);
      if (revision == 0) {
        revision = r.getHeader().getRevision();
      }
      for (int i = 0; i < r.getKvsCount(); i++) {
        T obj = decode(r.getKvs(i));
        if (!filter.test(obj)) {
          continue;
        }
        items.add(obj);
        if (limit > 0 && items.size() == limit) {
          boolean more = i < r.getKvsCount() - 1 || r.getMore();
          return new Page<>(items, revision, more ? encodeContinue(revision, r.getKvs(i).getKey().toStringUtf8()) : "");
        }
      }
      if (!r.getMore() || r.getKvsCount() == 0) {
        return new Page<>(items, revision, "");
      }
      start = bs(r.getKvs(r.getKvsCount() - 1).getKey().toStringUtf8() + "\0");
      chunk = Math.min(chunk * 2, 10_000);
    }
  }

  private RangeResponse range(ByteString start, String prefix, long revision, long limit) {
    RangeRequest.Builder req = RangeRequest.newBuilder().setKey(start).setRangeEnd(StoredObjects.prefixEnd(prefix)).setRevision(revision);
    if (limit > 0) {
      req.setLimit(limit);
    }
    try {
      return etcd.call(ch -> kv(ch).range(req.build()));
    } catch (StatusRuntimeException e) {
      if (e.getStatus().getCode() == Status.Code.OUT_OF_RANGE && revision > 0) {
        throw ApiException.expired("The provided continue parameter is too old to display a consistent list result. "
            + "You can start a new list without the continue parameter.");
      }
      throw e;
    }
  }

  private static String encodeContinue(long revision, String lastKey) {
    String raw = revision + "\n" + lastKey;
    return Base64.getUrlEncoder().withoutPadding().encodeToString(raw.getBytes(StandardCharsets.UTF_8));
  }

  private String[] decodeContinue(String token) {
    try {
      String raw = new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8);
      String[] parts = raw.split("\n", 2);
      if (parts.length != 2 || !parts[1].startsWith(prefix("")) || Long.parseLong(parts[0]) <= 0) {
        throw ApiException.badRequest("invalid continue token");
      }
      return parts;
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest("invalid continue token");
    }
  }

  private static long parseVersion(String rv) {
    if (rv == null || rv.isEmpty()) {
      return 0;
    }
    try {
      long v = Long.parseLong(rv);
      if (v <= 0) {
        throw ApiException.badRequest("invalid resourceVersion \"" + rv + "\"");
      }
      return v;
    } catch (NumberFormatException e) {
      throw ApiException.badRequest("invalid resourceVersion \"" + rv + "\"");
    }
  }
}
