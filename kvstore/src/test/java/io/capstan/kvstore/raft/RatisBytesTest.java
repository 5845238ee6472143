package io.capstan.kvstore.raft;

import static org.assertj.core.api.Assertions.assertThat;

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
    assertThat(RaftCommand.parser().parseFrom(RatisBytes.input(slice))).isEqualTo(BATCH);
  }

  @Test
  void aByteStringInPiecesIsCopiedAndStillRead() throws Exception {
    byte[] all = BATCH.toByteArray();
    var rope = UnsafeByteOperations.unsafeWrap(all, 0, 40)
        .concat(UnsafeByteOperations.unsafeWrap(all, 40, all.length - 40));

    assertThat(RatisBytes.flat(rope)).isNull();
    assertThat(RaftCommand.parser().parseFrom(RatisBytes.input(rope))).isEqualTo(BATCH);
  }

  @Test
  void parsedValuesDoNotShareTheEntrysArray() throws Exception {
    byte[] all = BATCH.toByteArray();
    RaftCommand parsed = RaftCommand.parser().parseFrom(RatisBytes.input(UnsafeByteOperations.unsafeWrap(all)));

    java.util.Arrays.fill(all, (byte) 0);

    assertThat(parsed.getBatch().getCommands(1).getPut().getValue().toStringUtf8()).isEqualTo("2".repeat(300));
  }

  @Test
  void emptyBytesReadAsTheEmptyMessage() throws Exception {
    assertThat(RaftCommand.parser().parseFrom(RatisBytes.input(
        org.apache.ratis.thirdparty.com.google.protobuf.ByteString.EMPTY))).isEqualTo(RaftCommand.getDefaultInstance());
  }
}
