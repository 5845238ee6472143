package io.capstan.kvstore.server;

import io.capstan.kvstore.mvcc.KvException;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Turns results and failures into gRPC replies with etcd's status codes and texts. */
final class Replies {
  private static final Logger LOG = LoggerFactory.getLogger(Replies.class);

  private Replies() {}

  /** Sends the future's value as the single reply, or its failure as a status. */
  static <T> void reply(CompletableFuture<T> future, StreamObserver<T> observer) {
    future.whenComplete((value, error) -> {
      if (error != null) {
        observer.onError(toStatus(error));
      } else {
        observer.onNext(value);
        observer.onCompleted();
      }
    });
  }

  /** Runs a synchronous handler, replying with its value or its failure. */
  static <T> void replyNow(Supplier<T> handler, StreamObserver<T> observer) {
    T value;
    try {
      value = handler.get();
    } catch (RuntimeException e) {
      observer.onError(toStatus(e));
      return;
    }
    observer.onNext(value);
    observer.onCompleted();
  }

  static StatusRuntimeException toStatus(Throwable error) {
    Throwable e = error;
    while (e instanceof CompletionException && e.getCause() != null) {
      e = e.getCause();
    }
    if (e instanceof KvException kv) {
      return kv.toStatus();
    }
    if (e instanceof StatusRuntimeException s) {
      return s;
    }
    LOG.warn("request failed unexpectedly", e);
    return Status.INTERNAL.withDescription("etcdserver: " + e).asRuntimeException();
  }
}
