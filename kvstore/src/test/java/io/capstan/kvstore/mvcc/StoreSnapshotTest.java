package io.capstan.kvstore.mvcc;

import static io.capstan.kvstore.mvcc.StateMachineHarness.bs;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.kvstore.proto.RaftCommand;
import io.etcd.jetcd.api.LeaseGrantRequest;
import io.etcd.jetcd.api.PutRequest;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Snapshots round-trip the whole state, refuse corruption, and fit etcdctl's envelope. */
class StoreSnapshotTest {
  @TempDir Path dir;

  private StateMachineHarness populated() {
    StateMachineHarness sm = new StateMachineHarness();
    sm.apply(RaftCommand.newBuilder().setLeaseGrant(LeaseGrantRequest.newBuilder().setID(5).setTTL(60)).build());
    for (int i = 0; i < 50; i++) {
      sm.put("k/" + (i % 10), "v" + i);
    }
    sm.put(PutRequest.newBuilder().setKey(bs("leased")).setValue(bs("x")).setLease(5).build());
    sm.delete("k/3", null, false);
    sm.compact(20);
    sm.put("after", "compaction");
    return sm;
  }

  @Test
  void roundTripKeepsStateHistoryAndLeases() throws IOException {
    StateMachineHarness sm = populated();
    Path file = dir.resolve("snap");
    StoreSnapshot.writeFile(sm.store, sm.members, 3, 77, file);

    StateMachineHarness copy = new StateMachineHarness();
    StoreSnapshot.Position p = StoreSnapshot.load(file, copy.store, copy.members);
    assertThat(p.term()).isEqualTo(3);
    assertThat(p.index()).isEqualTo(77);
    assertThat(p.revision()).isEqualTo(sm.store.currentRevision());
    assertThat(copy.store.currentRevision()).isEqualTo(sm.store.currentRevision());
    assertThat(copy.store.compactRevision()).isEqualTo(20);
    for (long rev = 20; rev <= sm.store.currentRevision(); rev++) {
      assertThat(copy.all(rev)).as("state at revision %d", rev).isEqualTo(sm.all(rev));
    }
    assertThat(copy.store.lease(5)).isEqualTo(sm.store.lease(5));
    // and the copy goes on exactly like the original
    assertThat(copy.put("next", "1")).isEqualTo(sm.put("next", "1"));
  }

  /**
   * A captured state is written later, on another thread, while the store goes on: what is written
   * is the state at capture, whatever the writes, deletions, lease changes and compaction made after.
   */
  @Test
  void aCapturedStateIsWrittenAsItWasAtCapture() throws IOException {
    StateMachineHarness sm = populated();
    StateMachineHarness twin = populated();
    StoreSnapshot.State state = StoreSnapshot.capture(sm.store, sm.members);
    long captured = sm.store.currentRevision();
    for (int i = 0; i < 30; i++) {
      sm.put("k/" + (i % 7), "later" + i); // new versions of keys in the capture, some histories grow
    }
    sm.delete("k/", "k0", false); // every k/ key
    sm.apply(RaftCommand.newBuilder().setLeaseRevoke(io.etcd.jetcd.api.LeaseRevokeRequest.newBuilder().setID(5)).build());
    sm.compact(sm.store.currentRevision()); // drops versions the capture holds
    Path file = dir.resolve("snap");
    try (state) {
      StoreSnapshot.writeFile(state, 3, 77, file);
    }

    StateMachineHarness copy = new StateMachineHarness();
    StoreSnapshot.Position p = StoreSnapshot.load(file, copy.store, copy.members);
    assertThat(p.revision()).isEqualTo(captured);
    assertThat(copy.store.currentRevision()).isEqualTo(captured);
    assertThat(copy.store.compactRevision()).isEqualTo(20);
    for (long rev = 20; rev <= captured; rev++) {
      assertThat(copy.all(rev)).as("state at revision %d", rev).isEqualTo(twin.all(rev));
    }
    assertThat(copy.store.lease(5)).isPresent().isEqualTo(twin.store.lease(5));
    assertThat(copy.put("next", "1")).isEqualTo(twin.put("next", "1"));
  }

  @Test
  void corruptedOrTruncatedFileIsRefused() throws IOException {
    Path file = dir.resolve("snap");
    StoreSnapshot.writeFile(populated().store, new ClusterMembers(), 1, 1, file);
    byte[] bytes = Files.readAllBytes(file);
    bytes[bytes.length / 2] ^= 0x40;
    Path bad = Files.write(dir.resolve("bad"), bytes);
    assertThatThrownBy(() -> StoreSnapshot.verify(bad)).isInstanceOf(IOException.class);
    assertThatThrownBy(() -> StoreSnapshot.load(bad, new MvccStore(), new ClusterMembers())).isInstanceOf(IOException.class);
    Path truncated = Files.write(dir.resolve("short"), java.util.Arrays.copyOf(Files.readAllBytes(file), 100));
    assertThatThrownBy(() -> StoreSnapshot.verify(truncated)).isInstanceOf(IOException.class);
  }

  @Test
  void envelopeRoundTripAndEtcdctlSizeRule() throws IOException {
    Path file = dir.resolve("snap");
    StoreSnapshot.writeFile(populated().store, new ClusterMembers(), 1, 1, file);
    Path wrapped = dir.resolve("wrapped.db");
    try (OutputStream out = Files.newOutputStream(wrapped)) {
      SnapshotEnvelope.wrap(file, out);
    }
    // etcdctl snapshot status accepts a file whose size % 512 == sha256 length
    assertThat(Files.size(wrapped) % 512).isEqualTo(32);
    assertThat(Files.size(wrapped)).isEqualTo(SnapshotEnvelope.wrappedSize(Files.size(file)));
    Path inner = dir.resolve("inner");
    assertThat(SnapshotEnvelope.unwrap(wrapped, inner)).isTrue();
    assertThat(Files.readAllBytes(inner)).isEqualTo(Files.readAllBytes(file));
    // a flipped byte inside the envelope fails its checksum
    byte[] bytes = Files.readAllBytes(wrapped);
    bytes[10] ^= 1;
    Path bad = Files.write(dir.resolve("bad.db"), bytes);
    assertThatThrownBy(() -> SnapshotEnvelope.unwrap(bad, dir.resolve("x"))).isInstanceOf(IOException.class);
  }
}
