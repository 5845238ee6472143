package io.capstan.kvstore.raft;

import com.google.protobuf.CodedInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import org.apache.ratis.thirdparty.com.google.protobuf.ByteOutput;
import org.apache.ratis.thirdparty.com.google.protobuf.ByteString;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;

/**
 * Reads the bytes Ratis hands over (its shaded protobuf's {@link ByteString}: a log entry's data,
 * a reply's message) with Capstan's protobuf, without copying them first.
 *
 * <p>{@code parseFrom(bytes.asReadOnlyByteBuffer())} made protobuf copy the whole entry into a new
 * array before it parsed it (a read-only buffer does not expose its array): every member, for
 * every entry it applied, and the leader again for every result. The bytes are only read here,
 * and what the parser makes of them (keys, values) is copied out as before (no aliasing), so
 * nothing parsed keeps Ratis' array alive.
 */
final class RatisBytes {
  private RatisBytes() {}

  /**
   * {@code bytes} parsed as a whole message, as {@code parseFrom} would. The protobuf version here
   * already refuses a stray end-group tag inside the parser; the last-tag check is what {@code
   * parseFrom(byte[])} adds on top, kept so that such input never ends a message early.
   */
  static <T> T parse(com.google.protobuf.Parser<T> parser, ByteString bytes)
      throws com.google.protobuf.InvalidProtocolBufferException {
    CodedInputStream in = input(bytes);
    T message = parser.parseFrom(in);
    in.checkLastTagWas(0);
    return message;
  }

  /** A parser over {@code bytes}: over the array that holds them when there is one, else over a copy. */
  static CodedInputStream input(ByteString bytes) {
    Flat flat = flat(bytes);
    return flat != null
        ? CodedInputStream.newInstance(flat.array(), flat.offset(), bytes.size())
        : CodedInputStream.newInstance(bytes.toByteArray());
  }

  /** Where {@code bytes} sit in one array, or null if they are in pieces (a rope). */
  record Flat(byte[] array, int offset) {}

  static Flat flat(ByteString bytes) {
    Capture c = new Capture(bytes.size());
    try {
      UnsafeByteOperations.unsafeWriteTo(bytes, c);
    } catch (IOException e) {
      throw new UncheckedIOException(e); // Capture throws none
    }
    if (c.pieces || c.array == null && bytes.size() > 0) {
      return null;
    }
    return c.array == null ? new Flat(new byte[0], 0) : new Flat(c.array, c.offset);
  }

  /** Takes the array a flat ByteString writes itself out with, in one piece; more pieces mean there is none. */
  private static final class Capture extends ByteOutput {
    private final int size;
    private byte[] array;
    private int offset;
    private boolean pieces;

    Capture(int size) {
      this.size = size;
    }

    @Override
    public void writeLazy(byte[] value, int offset, int length) {
      if (array == null && !pieces && length == size) {
        array = value;
        this.offset = offset;
      } else {
        pieces = true;
      }
    }

    @Override
    public void write(byte value) {
      pieces = true;
    }

    @Override
    public void write(byte[] value, int offset, int length) {
      pieces = true;
    }

    @Override
    public void write(ByteBuffer value) {
      pieces = true;
    }

    @Override
    public void writeLazy(ByteBuffer value) {
      pieces = true;
    }
  }
}
