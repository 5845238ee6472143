package io.capstan.kvstore.mvcc;

import com.google.protobuf.CodedOutputStream;
import io.capstan.kvstore.proto.LeaseRecord;
import io.capstan.kvstore.proto.MemberAttributes;
import io.capstan.kvstore.proto.RevisionEvents;
import io.capstan.kvstore.proto.SnapshotHeader;
import io.capstan.kvstore.proto.SnapshotRecord;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KeyValue;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Writes and reads a consistent image of the whole replicated state: store, leases and members.
 *
 * <p>Format: the magic bytes {@code CAPSNAP1}, then length-delimited {@code SnapshotRecord}s (a
 * header, the base key-values, every revision still in history with its events, leases, members),
 * then a record holding the SHA-256 of all bytes before it. Reading checks the magic and the
 * checksum, so a truncated or corrupted file is refused rather than half-loaded.
 */
public final class StoreSnapshot {
  private static final byte[] MAGIC = "CAPSNAP1".getBytes(StandardCharsets.US_ASCII);
  private static final int FORMAT_VERSION = 1;

  /** What a snapshot file says besides the state: the Raft position it was taken at. */
  public record Position(long term, long index, long revision) {}

  private StoreSnapshot() {}

  /**
   * What a snapshot holds, taken at one point (cheaply, see {@link MvccStore.Image}) and written
   * later, once. Close it when done, written or not: until then the store keeps the history it reads.
   */
  public static final class State implements AutoCloseable {
    private final MvccStore.Image image;
    private final List<MemberAttributes> members;

    private State(MvccStore.Image image, List<MemberAttributes> members) {
      this.image = image;
      this.members = members;
    }

    public long revision() {
      return image.revision();
    }

    /** Keys and events it holds: what writing it costs, roughly. */
    public long records() {
      return image.records();
    }

    @Override
    public void close() {
      image.close();
    }
  }

  /**
   * Takes the state of {@code store} and {@code members} as they are now. For the two to agree, call
   * it where neither changes: on the Raft apply thread, which makes every change to both.
   */
  public static State capture(MvccStore store, ClusterMembers members) {
    return new State(store.image(), members.all());
  }

  /**
   * Writes the current state to {@code out} (a {@link #capture} then {@link #write(State, long, long,
   * OutputStream)}).
   *
   * @throws IOException if writing fails
   */
  public static void write(MvccStore store, ClusterMembers members, long raftTerm, long raftIndex, OutputStream out)
      throws IOException {
    try (State state = capture(store, members)) {
      write(state, raftTerm, raftIndex, out);
    }
  }

  /**
   * Writes {@code state} to {@code out}; takes the store's read lock only in short steps, so the
   * store goes on meanwhile.
   *
   * @throws IOException if writing fails
   */
  public static void write(State state, long raftTerm, long raftIndex, OutputStream out) throws IOException {
    MvccStore.Image image = state.image;
    MessageDigest sha = sha256();
    DigestOutputStream digest = new DigestOutputStream(out, sha);
    // one encoder and 64 KiB buffer for the whole file: writeDelimitedTo makes a new encoder with
    // its own buffer for every record, as much garbage as the file is large
    CodedOutputStream coded = CodedOutputStream.newInstance(digest, 1 << 16);
    coded.writeRawBytes(MAGIC);
    record(SnapshotRecord.newBuilder().setHeader(SnapshotHeader.newBuilder()
        .setFormatVersion(FORMAT_VERSION)
        .setRevision(image.revision)
        .setCompactRevision(image.compactRevision)
        .setRaftTerm(raftTerm)
        .setRaftIndex(raftIndex)).build(), coded);
    image.forEachBaseValue(BASE_BATCH_KEYS, kv -> { // a SnapshotRecord holding base_kv, without making one
      coded.writeUInt32NoTag(CodedOutputStream.computeMessageSize(SnapshotRecord.BASE_KV_FIELD_NUMBER, kv));
      coded.writeMessage(SnapshotRecord.BASE_KV_FIELD_NUMBER, kv);
    });
    long rev = image.firstLogRevision;
    for (Change[] changes : image.revisions) {
      RevisionEvents.Builder events = RevisionEvents.newBuilder().setRevision(rev++);
      for (Change c : changes) {
        events.addEvents(c.event(false));
      }
      record(SnapshotRecord.newBuilder().setRevision(events).build(), coded);
    }
    for (int i = 0; i < image.leaseIds.length; i++) {
      record(SnapshotRecord.newBuilder()
          .setLease(LeaseRecord.newBuilder().setId(image.leaseIds[i]).setTtl(image.leaseTtls[i])).build(), coded);
    }
    for (MemberAttributes m : state.members) {
      record(SnapshotRecord.newBuilder().setMember(m).build(), coded);
    }
    coded.flush();
    byte[] sum = sha.digest();
    SnapshotRecord.newBuilder().setSha256(com.google.protobuf.ByteString.copyFrom(sum)).build().writeDelimitedTo(out);
    out.flush();
  }

  /** Writes the current state to {@code file} atomically (see {@link #writeFile(State, long, long, Path)}). */
  public static void writeFile(MvccStore store, ClusterMembers members, long raftTerm, long raftIndex, Path file)
      throws IOException {
    try (State state = capture(store, members)) {
      writeFile(state, raftTerm, raftIndex, file);
    }
  }

  /** Keys whose base values are read per hold of the store's read lock while a snapshot is written. */
  private static final int BASE_BATCH_KEYS = 1_000;

  /** Writes {@code state} to {@code file} atomically (temp file, fsync, rename). */
  public static void writeFile(State state, long raftTerm, long raftIndex, Path file) throws IOException {
    Path tmp = file.resolveSibling(file.getFileName() + TMP_SUFFIX);
    try (var ch = java.nio.channels.FileChannel.open(tmp, java.nio.file.StandardOpenOption.CREATE,
        java.nio.file.StandardOpenOption.TRUNCATE_EXISTING, java.nio.file.StandardOpenOption.WRITE);
        OutputStream out = java.nio.channels.Channels.newOutputStream(ch)) {
      write(state, raftTerm, raftIndex, out);
      ch.force(true);
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(tmp);
      throw e;
    }
    Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  /** What a snapshot file is called while it is being written; a crash may leave one behind. */
  public static final String TMP_SUFFIX = ".tmp";

  private static void record(SnapshotRecord r, CodedOutputStream out) throws IOException {
    out.writeUInt32NoTag(r.getSerializedSize());
    r.writeTo(out);
  }

  /** Size of the trailer: a delimited record holding a 32-byte SHA-256 (1 + 1 + 1 + 32 bytes). */
  private static final int TRAILER_BYTES = 35;

  /**
   * Replaces the state of {@code store} and {@code members} with the snapshot in {@code file}.
   *
   * @throws IOException if the file cannot be read, is not a snapshot, or fails its checksum
   */
  public static Position load(Path file, MvccStore store, ClusterMembers members) throws IOException {
    verify(file);
    try (InputStream raw = Files.newInputStream(file)) {
      InputStream in = new BufferedInputStream(raw, 1 << 16);
      in.skipNBytes(MAGIC.length);
      SnapshotHeader header = null;
      List<KeyValue> base = new ArrayList<>();
      List<List<KeyValue>> revisions = new ArrayList<>();
      long firstRev = -1;
      List<LeaseRecord> leases = new ArrayList<>();
      List<MemberAttributes> memberList = new ArrayList<>();
      for (SnapshotRecord r = SnapshotRecord.parseDelimitedFrom(in); !r.hasSha256();
          r = SnapshotRecord.parseDelimitedFrom(in)) {
        switch (r.getRecordCase()) {
          case HEADER -> header = r.getHeader();
          case BASE_KV -> base.add(r.getBaseKv());
          case REVISION -> {
            if (firstRev < 0) {
              firstRev = r.getRevision().getRevision();
            }
            List<KeyValue> kvs = new ArrayList<>(r.getRevision().getEventsCount());
            for (Event e : r.getRevision().getEventsList()) {
              kvs.add(e.getKv());
            }
            revisions.add(kvs);
          }
          case LEASE -> leases.add(r.getLease());
          case MEMBER -> memberList.add(r.getMember());
          default -> throw new IOException("snapshot holds a record this version does not know: " + r.getRecordCase());
        }
      }
      if (header == null || header.getFormatVersion() != FORMAT_VERSION) {
        throw new IOException("snapshot has no header or an unsupported format version");
      }
      if (firstRev < 0) {
        firstRev = header.getRevision() + 1;
      }
      store.lock().writeLock().lock();
      try {
        store.leases.clear();
        for (LeaseRecord l : leases) {
          store.leases.grant(l.getId(), l.getTtl());
        }
        store.resetLocked(header.getRevision(), header.getCompactRevision(), base, revisions, firstRev);
        store.reattachLeasesLocked();
      } finally {
        store.lock().writeLock().unlock();
      }
      members.replaceAll(memberList);
      store.notifyReset();
      return new Position(header.getRaftTerm(), header.getRaftIndex(), header.getRevision());
    }
  }

  /**
   * Checks the magic bytes and the SHA-256 trailer of a snapshot file.
   *
   * @throws IOException naming what is wrong
   */
  public static void verify(Path file) throws IOException {
    long size = Files.size(file);
    if (size < MAGIC.length + TRAILER_BYTES) {
      throw new IOException("snapshot " + file + " is too short (" + size + " bytes): truncated?");
    }
    MessageDigest sha = sha256();
    try (InputStream in = new BufferedInputStream(Files.newInputStream(file), 1 << 16)) {
      byte[] magic = in.readNBytes(MAGIC.length);
      if (!Arrays.equals(magic, MAGIC)) {
        throw new IOException(file + " is not a Capstan kvstore snapshot (bad magic bytes)");
      }
      sha.update(magic);
      byte[] buf = new byte[1 << 16];
      long left = size - MAGIC.length - TRAILER_BYTES;
      while (left > 0) {
        int n = in.read(buf, 0, (int) Math.min(buf.length, left));
        if (n < 0) {
          throw new IOException("snapshot " + file + " ended early");
        }
        sha.update(buf, 0, n);
        left -= n;
      }
      SnapshotRecord trailer = SnapshotRecord.parseDelimitedFrom(in);
      if (trailer == null || !trailer.hasSha256()
          || !Arrays.equals(trailer.getSha256().toByteArray(), sha.digest())) {
        throw new IOException("snapshot " + file + " fails its SHA-256 check: corrupted or truncated");
      }
    }
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
