package io.capstan.kvstore.mvcc;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;

/**
 * The wrapping that {@code etcdctl snapshot save} insists on: it accepts a snapshot only if its
 * size is 32 more than a multiple of 512 and treats the last 32 bytes as the SHA-256 of the rest
 * (etcd's bbolt files are 512-byte aligned). We stream our snapshot file, zero padding, its length
 * as 8 big-endian bytes, then the SHA-256 of all of that; {@link #unwrap} undoes it.
 */
public final class SnapshotEnvelope {
  private static final int ALIGN = 512;
  private static final int SHA = 32;

  private SnapshotEnvelope() {}

  /** Bytes of padding and trailer that follow a snapshot file of {@code length} bytes. */
  public static long wrappedSize(long length) {
    long body = length + 8;
    long padded = (body + ALIGN - 1) / ALIGN * ALIGN;
    return padded + SHA;
  }

  /** Copies {@code file} to {@code out} in the envelope. */
  public static void wrap(Path file, OutputStream out) throws IOException {
    MessageDigest sha = sha256();
    long length = Files.size(file);
    byte[] buf = new byte[64 * 1024];
    try (InputStream in = Files.newInputStream(file)) {
      int n;
      while ((n = in.read(buf)) > 0) {
        sha.update(buf, 0, n);
        out.write(buf, 0, n);
      }
    }
    long body = length + 8;
    byte[] pad = new byte[(int) ((ALIGN - body % ALIGN) % ALIGN)];
    byte[] len = ByteBuffer.allocate(8).putLong(length).array();
    sha.update(pad);
    sha.update(len);
    out.write(pad);
    out.write(len);
    out.write(sha.digest());
  }

  /**
   * If {@code file} is in the envelope, checks its SHA-256 and writes the inner snapshot to
   * {@code target}, returning true; returns false if the file is not wrapped.
   *
   * @throws IOException if it is wrapped but fails its checksum
   */
  public static boolean unwrap(Path file, Path target) throws IOException {
    long size = Files.size(file);
    if (size % ALIGN != SHA || size < ALIGN + SHA) {
      return false;
    }
    MessageDigest sha = sha256();
    byte[] trailer;
    long length;
    try (var ch = Files.newByteChannel(file, StandardOpenOption.READ)) {
      ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
      long left = size - SHA;
      while (left > 0) {
        buf.clear().limit((int) Math.min(buf.capacity(), left));
        int n = ch.read(buf);
        if (n < 0) {
          throw new IOException("snapshot ended early");
        }
        sha.update(buf.array(), 0, n);
        left -= n;
      }
      trailer = new byte[SHA];
      ch.read(ByteBuffer.wrap(trailer));
      ByteBuffer lenBuf = ByteBuffer.allocate(8);
      ch.position(size - SHA - 8);
      ch.read(lenBuf);
      length = lenBuf.flip().getLong();
    }
    if (!Arrays.equals(trailer, sha.digest())) {
      throw new IOException("snapshot " + file + " fails its SHA-256 check: corrupted or truncated");
    }
    if (length < 0 || length > size) {
      throw new IOException("snapshot " + file + " has an impossible inner length " + length);
    }
    try (InputStream in = Files.newInputStream(file); OutputStream out = Files.newOutputStream(target)) {
      byte[] buf = new byte[64 * 1024];
      long left = length;
      while (left > 0) {
        int n = in.read(buf, 0, (int) Math.min(buf.length, left));
        out.write(buf, 0, n);
        left -= n;
      }
    }
    return true;
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
