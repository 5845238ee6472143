package io.capstan.kvstore.raft;

import com.codahale.metrics.Timer;
import io.capstan.kvstore.mvcc.StoreSnapshot;
import java.io.File;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import java.util.regex.Pattern;
import org.apache.ratis.io.MD5Hash;
import org.apache.ratis.server.protocol.TermIndex;
import org.apache.ratis.server.storage.FileInfo;
import org.apache.ratis.server.storage.RaftStorage;
import org.apache.ratis.statemachine.SnapshotRetentionPolicy;
import org.apache.ratis.statemachine.impl.SimpleStateMachineStorage;
import org.apache.ratis.statemachine.impl.SingleFileSnapshotInfo;
import org.apache.ratis.util.MD5FileUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Takes this member's Raft snapshots without holding up the apply thread.
 *
 * <p>Ratis asks for a snapshot on its apply thread once {@code --snapshot-count} entries were
 * applied since the last one, and purges the log up to the index the state machine returns.
 * Writing the whole store there (100,000 keys: 1.3-2.3 s of protobuf, SHA-256, fsync and Ratis'
 * MD5) stopped every write for that long. Here the apply thread only captures the state ({@link
 * StoreSnapshot#capture}: references to the store's immutable values, milliseconds) and a
 * background thread writes it. Until the file is complete {@link #take} answers "none taken"
 * (-1), so Ratis neither registers nor purges anything; it asks again after its next applied
 * batch and then gets the finished snapshot's index. If nothing is being applied, the writer asks
 * Ratis for a snapshot itself ({@code onFinished}, a snapshot-management request), which makes
 * the apply thread call {@link #take} and receive it. While a member stops, Ratis' last snapshot
 * is written on the apply thread: there is nothing left to hold up.
 *
 * <p>{@link #take} and {@link #reloaded} run on Ratis' apply thread (tests call {@link #take} from theirs too).
 */
final class SnapshotWriter implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(SnapshotWriter.class);
  /** After a failed write, how long before the next try (a full disk fails every try). */
  private static final long RETRY_AFTER_FAILURE_NANOS = TimeUnit.SECONDS.toNanos(10);

  private static final Pattern TMP_NAME =
      Pattern.compile(SimpleStateMachineStorage.SNAPSHOT_REGEX.pattern() + Pattern.quote(StoreSnapshot.TMP_SUFFIX));

  private final long threshold;
  private final Storage storage = new Storage();
  private final ExecutorService executor = Executors.newSingleThreadExecutor(r -> {
    Thread t = new Thread(r, "snapshot-writer");
    t.setDaemon(true);
    return t;
  });
  private final Timer captures = new Timer();
  private final Timer writes = new Timer();
  /** A snapshot written completely (file and MD5) that Ratis has not been given yet. */
  private final AtomicReference<SingleFileSnapshotInfo> finished = new AtomicReference<>();
  private volatile Future<?> inProgress;
  /** The newest snapshot index Ratis knows (its updater's snapshot index): never give it less. */
  private long given = -1;
  private volatile long retryAfter = System.nanoTime();
  private volatile Runnable onFinished = () -> {};
  private volatile Runnable beforeWrite = () -> {};

  SnapshotWriter(long threshold) {
    this.threshold = threshold;
  }

  /** True while a background write runs (its task, until it has handed on the request to Ratis). */
  private boolean writing() {
    Future<?> f = inProgress;
    return f != null && !f.isDone();
  }

  Storage storage() {
    return storage;
  }

  /**
   * Ratis' snapshot storage, remembering that it has no snapshot as well as which it has. Ratis
   * asks for the latest snapshot at every pass of each log appender's loop (before each
   * AppendEntries, the commit news included) and on a follower's appends; Ratis' storage keeps a
   * snapshot once it knows one, but while it has none it lists the snapshot directory again at
   * each question: on a member that has not taken a snapshot yet (fewer than --snapshot-count
   * entries since it started, 100,000 by default) that was a directory listing (open, getdents,
   * a regex on each name) on an appender's thread at each AppendEntries. A snapshot comes into
   * the directory only from this writer or from an installation sent by the leader, which ends
   * with {@link #loadLatestSnapshot} ({@link KvStateMachine#reinitialize}); either way it reaches
   * {@link #updateLatestSnapshot}, so "none" is remembered until then. During an installation
   * (files moved in, not reloaded yet) the answer is as stale as Ratis' own remembered snapshot
   * is then.
   */
  final class Storage extends SimpleStateMachineStorage {
    /** Bumped after anything that may add a snapshot; "none" holds only for the count it was seen at. */
    private final AtomicLong changes = new AtomicLong();
    private volatile long noneAt = -1;
    /** Directory listings made for {@link #getLatestSnapshot} (tests). */
    final AtomicLong listings = new AtomicLong();

    @Override
    public SingleFileSnapshotInfo getLatestSnapshot() {
      long seen = changes.get();
      if (noneAt == seen) {
        return null;
      }
      SingleFileSnapshotInfo latest = super.getLatestSnapshot();
      if (latest == null) {
        listings.incrementAndGet();
        noneAt = seen; // a change meanwhile bumped the count: then this "none" is never used
      }
      return latest;
    }

    /** Every snapshot Ratis' storage comes to know passes here (a reload of the directory that finds one too). */
    @Override
    public SingleFileSnapshotInfo updateLatestSnapshot(SingleFileSnapshotInfo info) {
      try {
        return super.updateLatestSnapshot(info);
      } finally {
        if (info != null) {
          changes.incrementAndGet();
        }
      }
    }

    @Override
    public void init(RaftStorage raftStorage) throws IOException {
      try {
        super.init(raftStorage);
      } finally {
        changes.incrementAndGet();
      }
    }

    /** Ratis calls this after every take; it must not meet a snapshot whose MD5 is not written yet. */
    @Override
    public void cleanupOldSnapshots(SnapshotRetentionPolicy policy) throws IOException {
      if (!writing()) {
        super.cleanupOldSnapshots(policy);
      }
    }
  }

  /** Capture times on the apply thread (what a snapshot holds writes up for). */
  Timer captures() {
    return captures;
  }

  /** Background write times: file, fsync and MD5. */
  Timer writes() {
    return writes;
  }

  /** Runs on the writer thread after each finished snapshot, once its write is over; must not block. */
  void setOnFinished(Runnable onFinished) {
    this.onFinished = onFinished;
  }

  /** Runs on the writer thread before each background write (tests hold the writer with it). */
  void setBeforeWrite(Runnable beforeWrite) {
    this.beforeWrite = beforeWrite;
  }

  /**
   * After the storage found the snapshot this member starts from (or none) in {@code dir}; removes
   * the files a crash left half-written there.
   */
  void initialized(File dir) throws IOException {
    SingleFileSnapshotInfo latest = storage.getLatestSnapshot();
    given = latest == null ? -1 : latest.getIndex();
    if (!dir.isDirectory()) {
      return;
    }
    try (DirectoryStream<Path> tmp = Files.newDirectoryStream(dir.toPath(),
        p -> TMP_NAME.matcher(p.getFileName().toString()).matches())) {
      for (Path p : tmp) {
        LOG.info("removing {}, a snapshot left half-written", p.getFileName());
        Files.deleteIfExists(p);
      }
    }
  }

  /**
   * Ratis asks for a snapshot at {@code last} (the last applied entry). Returns the index of a
   * complete snapshot not given before, or -1: none yet.
   */
  synchronized long take(TermIndex last, boolean stopping, Supplier<StoreSnapshot.State> capture) throws IOException {
    if (stopping) {
      awaitWrite();
    }
    SingleFileSnapshotInfo done = finished.getAndSet(null);
    if (done != null && done.getIndex() > given) {
      storage.updateLatestSnapshot(done);
      given = done.getIndex();
      return given;
    }
    if (stopping) {
      if (last.getIndex() <= given) {
        return -1;
      }
      SingleFileSnapshotInfo info;
      try (StoreSnapshot.State state = time(captures, capture)) {
        info = write(state, last);
      }
      storage.updateLatestSnapshot(info);
      given = info.getIndex();
      return given;
    }
    if (writing() || last.getIndex() - given < threshold || System.nanoTime() - retryAfter < 0) {
      return -1;
    }
    StoreSnapshot.State state = time(captures, capture);
    try {
      inProgress = executor.submit(() -> writeInBackground(state, last));
    } catch (java.util.concurrent.RejectedExecutionException e) {
      state.close(); // closing
    }
    return -1;
  }

  /** The background write of a state captured at {@code last}; closes the state. */
  private void writeInBackground(StoreSnapshot.State state, TermIndex last) {
    try (state) {
      try {
        beforeWrite.run();
        finished.set(write(state, last));
      } catch (IOException | RuntimeException e) {
        LOG.error("writing the snapshot at raft index {} failed; trying again in {} s", last.getIndex(),
            TimeUnit.NANOSECONDS.toSeconds(RETRY_AFTER_FAILURE_NANOS), e);
        retryAfter = System.nanoTime() + RETRY_AFTER_FAILURE_NANOS;
        return;
      }
      // a task of its own: the write is over for whoever waits for it (a reload, a stop) before
      // the request goes into Ratis
      try {
        executor.execute(onFinished);
      } catch (java.util.concurrent.RejectedExecutionException e) {
        // closing: Ratis is stopping and takes no request
      }
    }
  }

  /**
   * Ratis reloaded the state machine from the newest snapshot in storage (one installed from the
   * leader): its updater now starts from that snapshot's index. Call it after a write in progress
   * ended ({@link #awaitWrite}) and the storage was read again.
   */
  synchronized void reloaded() {
    finished.set(null);
    SingleFileSnapshotInfo latest = storage.getLatestSnapshot();
    given = latest == null ? -1 : latest.getIndex();
  }

  /** Waits for a background write in progress to end (it always ends: it is bounded by the disk). */
  void awaitWrite() {
    Future<?> f = inProgress;
    if (f == null) {
      return;
    }
    boolean interrupted = false;
    while (!f.isDone()) {
      try {
        f.get();
      } catch (InterruptedException e) {
        interrupted = true;
      } catch (java.util.concurrent.ExecutionException e) {
        break; // logged by the writer
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  private SingleFileSnapshotInfo write(StoreSnapshot.State state, TermIndex at) throws IOException {
    File file = storage.getSnapshotFile(at.getTerm(), at.getIndex());
    long start = System.nanoTime();
    StoreSnapshot.writeFile(state, at.getTerm(), at.getIndex(), file.toPath());
    long written = System.nanoTime();
    MD5Hash md5 = MD5FileUtil.computeAndSaveMd5ForFile(file);
    long done = System.nanoTime();
    writes.update(done - start, TimeUnit.NANOSECONDS);
    LOG.info("wrote snapshot at raft index {} (revision {}, {} keys and events, {} bytes) on {} in {} ms: {} ms the file, {} ms its MD5",
        at.getIndex(), state.revision(), state.records(), file.length(), Thread.currentThread().getName(),
        (done - start) / 1_000_000, (written - start) / 1_000_000, (done - written) / 1_000_000);
    return new SingleFileSnapshotInfo(new FileInfo(file.toPath(), md5), at);
  }

  private static StoreSnapshot.State time(Timer timer, Supplier<StoreSnapshot.State> capture) {
    long start = System.nanoTime();
    StoreSnapshot.State state = capture.get();
    long took = System.nanoTime() - start;
    timer.update(took, TimeUnit.NANOSECONDS);
    LOG.info("captured the state for a snapshot (revision {}, {} keys and events) in {} ms", state.revision(),
        state.records(), took / 1_000_000);
    return state;
  }

  /** Lets a write in progress finish (its file is then complete for the next start). */
  @Override
  public void close() {
    executor.shutdown();
    try {
      if (!executor.awaitTermination(60, TimeUnit.SECONDS)) {
        LOG.warn("a snapshot write did not finish within 60 s of closing; its temporary file stays behind");
        executor.shutdownNow();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      executor.shutdownNow();
    }
  }
}
