package io.capstan.apiserver.storage;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import io.capstan.api.meta.v1.ObjectMeta;
import io.etcd.jetcd.api.KeyValue;
import java.nio.charset.StandardCharsets;

/**
 * The few things every layer does with an API object of any kind: read and replace its
 * {@code metadata}, and turn a stored key-value into the object with its resourceVersion (the
 * key's mod_revision).
 */
public final class StoredObjects {
  private StoredObjects() {}

  private static FieldDescriptor metadataField(Message m) {
    return m.getDescriptorForType().findFieldByName("metadata");
  }

  public static ObjectMeta meta(Message m) {
    return (ObjectMeta) m.getField(metadataField(m));
  }

  @SuppressWarnings("unchecked")
  public static <T extends Message> T withMeta(T m, ObjectMeta meta) {
    return (T) m.toBuilder().setField(metadataField(m), meta).build();
  }

  public static <T extends Message> T withResourceVersion(T m, long revision) {
    return withMeta(m, meta(m).toBuilder().setResourceVersion(Long.toString(revision)).build());
  }

  public static long resourceVersion(Message m) {
    return Long.parseLong(meta(m).getResourceVersion());
  }

  /** The object stored in {@code kv}, with resourceVersion set from the key's mod_revision. */
  @SuppressWarnings("unchecked")
  public static <T extends Message> T decode(KeyValue kv, T prototype) {
    try {
      return withResourceVersion((T) prototype.getParserForType().parseFrom(kv.getValue()), kv.getModRevision());
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException("corrupt object at " + kv.getKey().toStringUtf8(), e);
    }
  }

  /** The etcd range end that makes {@code prefix} (which ends in '/') a prefix query. */
  public static ByteString prefixEnd(String prefix) {
    byte[] b = prefix.getBytes(StandardCharsets.UTF_8);
    b[b.length - 1]++;
    return ByteString.copyFrom(b);
  }
}
