package io.capstan.kvstore.testing;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.KeyValue;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RangeResponse;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/** Small blocking etcd-API helpers for tests, over raw gRPC stubs (statuses stay visible). */
public final class Kv {
  private Kv() {}

  public static ByteString bs(String s) {
    return ByteString.copyFromUtf8(s);
  }

  public static String str(ByteString b) {
    return b.toString(StandardCharsets.UTF_8);
  }

  /** The range end that makes {@code prefix} a prefix query (etcd's rule). */
  public static ByteString prefixEnd(String prefix) {
    byte[] b = prefix.getBytes(StandardCharsets.UTF_8);
    for (int i = b.length - 1; i >= 0; i--) {
      if (b[i] != (byte) 0xff) {
        b[i]++;
        return ByteString.copyFrom(b, 0, i + 1);
      }
    }
    return ByteString.copyFrom(new byte[] {0});
  }

  public static KVGrpc.KVBlockingStub kv(Channel ch) {
    return KVGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  public static PutResponse put(Channel ch, String key, String value) {
    return kv(ch).put(PutRequest.newBuilder().setKey(bs(key)).setValue(bs(value)).build());
  }

  public static Optional<KeyValue> get(Channel ch, String key, boolean serializable) {
    RangeResponse r = kv(ch).range(RangeRequest.newBuilder().setKey(bs(key)).setSerializable(serializable).build());
    return r.getKvsList().stream().findFirst();
  }

  public static RangeResponse prefix(Channel ch, String prefix, boolean serializable) {
    return kv(ch).range(RangeRequest.newBuilder().setKey(bs(prefix)).setRangeEnd(prefixEnd(prefix))
        .setSerializable(serializable).build());
  }

  /** Puts through whichever of the channels answers, trying the next one on a transient error. */
  public static PutResponse putAnywhere(List<? extends Channel> channels, String key, String value, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    int i = 0;
    StatusRuntimeException last = null;
    while (System.currentTimeMillis() < deadline) {
      Channel ch = channels.get(i++ % channels.size());
      try {
        return KVGrpc.newBlockingStub(ch).withDeadlineAfter(3, TimeUnit.SECONDS)
            .put(PutRequest.newBuilder().setKey(bs(key)).setValue(bs(value)).build());
      } catch (StatusRuntimeException e) {
        Status.Code c = e.getStatus().getCode();
        if (c != Status.Code.UNAVAILABLE && c != Status.Code.DEADLINE_EXCEEDED && c != Status.Code.UNKNOWN
            && c != Status.Code.CANCELLED) {
          throw e;
        }
        last = e;
      }
    }
    throw new AssertionError("no member accepted put " + key + " within " + timeoutMs + " ms", last);
  }
}
