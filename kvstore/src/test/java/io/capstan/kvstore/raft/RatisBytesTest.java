package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.capstan.kvstore.proto.CommandBatch;
import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.PutRequest;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.junit.jupiter.api.Test;

class RatisBytesTest {
  private static final RaftCommand BATCH = RaftCommand.newBuilder().setBatch(CommandBatch.newBuilder()
      .addCommands(put("a", "1")).addCommands(put("b", "2".repeat(300)))).build();

  private static RaftCommand put(String key, String value) {
    return RaftCommand.newBuilder().setPut(PutRequest.newBuilder()
        .setKey(ByteString.copyFromUtf8(key)).setValue(ByteString.copyFromUtf8(value))).build();
  }

  @Test
  void aFlatByteStringIsReadInPlaceNotCopied() throws Exception {
    byte[] framed = new byte[BATCH.getSerializedSize() + 7];
    System.arraycopy(BATCH.toByteArray(), 0, framed, 5, BATCH.getSerializedSize());
    var slice = UnsafeByteOperations.unsafeWrap(framed, 5, BATCH.getSerializedSize());

    RatisBytes.Flat flat = RatisBytes.flat(slice);

    assertThat(flat).isNotNull();
    assertThat(flat.array()).isSameAs(framed);
    assertThat(flat.offset()).isEqualTo(5);
    assertThat(RatisBytes.parse(RaftCommand.parser(), slice)).isEqualTo(BATCH);
  }

  @Test
  void aByteStringInPiecesIsCopiedAndStillRead() throws Exception {
    byte[] all = BATCH.toByteArray();
    var rope = UnsafeByteOperations.unsafeWrap(all, 0, 40)
        .concat(UnsafeByteOperations.unsafeWrap(all, 40, all.length - 40));

    assertThat(RatisBytes.flat(rope)).isNull();
    assertThat(RatisBytes.parse(RaftCommand.parser(), rope)).isEqualTo(BATCH);
  }

  @Test
  void parsedValuesDoNotShareTheEntrysArray() throws Exception {
    byte[] all = BATCH.toByteArray();
    RaftCommand parsed = RatisBytes.parse(RaftCommand.parser(), UnsafeByteOperations.unsafeWrap(all));

    java.util.Arrays.fill(all, (byte) 0);

    assertThat(parsed.getBatch().getCommands(1).getPut().getValue().toStringUtf8()).isEqualTo("2".repeat(300));
  }

  @Test
  void aStrayEndGroupTagFailsTheParseAsParseFromDoes() {
    byte[] all = BATCH.toByteArray();
    byte[] broken = java.util.Arrays.copyOf(all, all.length + 1);
    broken[all.length] = 0x0c; // field 1, wire type 4 (end group): ends nothing here
    // what the code replaced (parseFrom of a buffer) refuses it too
    assertThatThrownBy(() -> RaftCommand.parseFrom(java.nio.ByteBuffer.wrap(broken)))
        .isInstanceOf(com.google.protobuf.InvalidProtocolBufferException.class);

    assertThatThrownBy(() -> RatisBytes.parse(RaftCommand.parser(), UnsafeByteOperations.unsafeWrap(broken)))
        .isInstanceOf(com.google.protobuf.InvalidProtocolBufferException.class);
  }

  @Test
  void emptyBytesReadAsTheEmptyMessage() throws Exception {
    assertThat(RatisBytes.parse(RaftCommand.parser(),
        org.apache.ratis.thirdparty.com.google.protobuf.ByteString.EMPTY)).isEqualTo(RaftCommand.getDefaultInstance());
  }
}
