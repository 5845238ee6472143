package io.capstan.kvstore.mvcc;

import io.capstan.kvstore.proto.LeaseRecord;
import io.capstan.kvstore.proto.MemberAttributes;
import io.capstan.kvstore.proto.RevisionEvents;
import io.capstan.kvstore.proto.SnapshotHeader;
import io.capstan.kvstore.proto.SnapshotRecord;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KeyValue;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
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
   * Writes the state to {@code out} under the store's read lock.
   *
   * @throws IOException if writing fails
   */
  public static void write(MvccStore store, ClusterMembers members, long raftTerm, long raftIndex, OutputStream out)
      throws IOException {
    MessageDigest sha = sha256();
    DigestOutputStream digest = new DigestOutputStream(new BufferedOutputStream(out, 1 << 16), sha);
    store.lock().readLock().lock();
    try {
      digest.write(MAGIC);
      record(SnapshotRecord.newBuilder().setHeader(SnapshotHeader.newBuilder()
          .setFormatVersion(FORMAT_VERSION)
          .setRevision(store.currentRevision())
          .setCompactRevision(store.compactRevision())
          .setRaftTerm(raftTerm)
          .setRaftIndex(raftIndex)).build(), digest);
      IOException[] failure = new IOException[1];
      store.exportLocked(
          kv -> tryRecord(SnapshotRecord.newBuilder().setBaseKv(kv).build(), digest, failure),
          committed -> {
            RevisionEvents.Builder rev = RevisionEvents.newBuilder().setRevision(committed.revision());
            for (Change c : committed.changes()) {
              rev.addEvents(c.event(false));
            }
            tryRecord(SnapshotRecord.newBuilder().setRevision(rev).build(), digest, failure);
          });
      if (failure[0] != null) {
        throw failure[0];
      }
      for (LeaseTable.Lease lease : store.leases.all()) {
        record(SnapshotRecord.newBuilder()
            .setLease(LeaseRecord.newBuilder().setId(lease.id).setTtl(lease.ttl)).build(), digest);
      }
    } finally {
      store.lock().readLock().unlock();
    }
    for (MemberAttributes m : members.all()) {
      record(SnapshotRecord.newBuilder().setMember(m).build(), digest);
    }
    digest.flush();
    byte[] sum = sha.digest();
    SnapshotRecord.newBuilder().setSha256(com.google.protobuf.ByteString.copyFrom(sum)).build().writeDelimitedTo(out);
    out.flush();
  }

  /** Writes the snapshot to {@code file} atomically (temp file, fsync, rename). */
  public static void writeFile(MvccStore store, ClusterMembers members, long raftTerm, long raftIndex, Path file)
      throws IOException {
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    try (var ch = java.nio.channels.FileChannel.open(tmp, java.nio.file.StandardOpenOption.CREATE,
        java.nio.file.StandardOpenOption.TRUNCATE_EXISTING, java.nio.file.StandardOpenOption.WRITE);
        OutputStream out = java.nio.channels.Channels.newOutputStream(ch)) {
      write(store, members, raftTerm, raftIndex, out);
      ch.force(true);
    }
    Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  private static void record(SnapshotRecord r, OutputStream out) throws IOException {
    r.writeDelimitedTo(out);
  }

  private static void tryRecord(SnapshotRecord r, OutputStream out, IOException[] failure) {
    if (failure[0] != null) {
      return;
    }
    try {
      r.writeDelimitedTo(out);
    } catch (IOException e) {
      failure[0] = e;
    }
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
