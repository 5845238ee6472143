package io.capstan.apiserver.storage;

import com.google.protobuf.ByteString;
import io.capstan.common.DaemonThreads;
import io.etcd.jetcd.api.CompactionRequest;
import io.etcd.jetcd.api.Compare;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.RequestOp;
import io.etcd.jetcd.api.TxnRequest;
import io.etcd.jetcd.api.TxnResponse;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Compacts the kvstore's history as kube-apiserver does ({@code --etcd-compaction-interval},
 * default 5 minutes): every interval each replica tries a compare-and-swap on the key {@code
 * compact_rev_key}, expecting the version it saw last. The replica that wins records the current
 * revision there and compacts to the revision recorded one round before; the others learn the
 * key's new version and the revision of that moment. So the replicas compact about once an
 * interval between them, never below what is an interval old, and the first round after a start
 * only records (no compaction on bootstrap). Without it, the history of every object would stay
 * in the kvstore until its space quota refused writes.
 */
public final class HistoryCompactor implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(HistoryCompactor.class);
  /** kube-apiserver's key, so replicas of both (or of different versions) agree. */
  static final ByteString KEY = ByteString.copyFromUtf8("compact_rev_key");

  private final EtcdClient etcd;
  private final AtomicLong compactions = new AtomicLong();
  private long seenVersion;
  private long revision;
  private ScheduledExecutorService timer;

  HistoryCompactor(EtcdClient etcd) {
    this.etcd = etcd;
  }

  /** Starts rounds every {@code interval} on its own thread. */
  public static HistoryCompactor start(EtcdClient etcd, Duration interval) {
    HistoryCompactor c = new HistoryCompactor(etcd);
    c.timer = DaemonThreads.scheduler("history-compactor");
    long every = interval.toNanos();
    c.timer.scheduleWithFixedDelay(() -> {
      try {
        c.round();
      } catch (RuntimeException e) {
        LOG.warn("kvstore history compaction failed; will try again in {} s: {}", interval.toSeconds(), e.getMessage());
      }
    }, every, every, TimeUnit.NANOSECONDS);
    LOG.info("compacting the kvstore's history every {} s", interval.toSeconds());
    return c;
  }

  /**
   * One round: the compare-and-swap, then, if this replica won and recorded a revision last
   * round, the compaction.
   *
   * @return the revision compacted to, or 0 if none was
   */
  long round() {
    long recorded = revision;
    TxnResponse r = etcd.call(ch -> KVGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS).txn(
        TxnRequest.newBuilder()
            .addCompare(Compare.newBuilder().setKey(KEY).setTarget(Compare.CompareTarget.VERSION)
                .setResult(Compare.CompareResult.EQUAL).setVersion(seenVersion))
            .addSuccess(RequestOp.newBuilder().setRequestPut(PutRequest.newBuilder().setKey(KEY)
                .setValue(ByteString.copyFromUtf8(Long.toString(recorded)))))
            .addFailure(RequestOp.newBuilder().setRequestRange(RangeRequest.newBuilder().setKey(KEY)))
            .build()));
    revision = r.getHeader().getRevision();
    if (!r.getSucceeded()) {
      // another replica won this round; a retried put of ours that did apply lands here too
      var kvs = r.getResponses(0).getResponseRange().getKvsList();
      seenVersion = kvs.isEmpty() ? 0 : kvs.get(0).getVersion();
      return 0;
    }
    seenVersion++;
    if (recorded == 0) {
      return 0;
    }
    try {
      etcd.call(ch -> KVGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS)
          .compact(CompactionRequest.newBuilder().setRevision(recorded).build()));
    } catch (StatusRuntimeException e) {
      if (e.getStatus().getCode() == Status.Code.OUT_OF_RANGE) {
        return 0; // compacted that far already (etcd's or the kvstore's own auto-compaction)
      }
      throw e;
    }
    compactions.incrementAndGet();
    LOG.info("compacted the kvstore's history to revision {}", recorded);
    return recorded;
  }

  /** Compactions this replica made. */
  public long compactions() {
    return compactions.get();
  }

  @Override
  public void close() {
    if (timer != null) {
      timer.shutdownNow();
    }
  }
}
