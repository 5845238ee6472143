package io.capstan.kvstore.server;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnknownFieldSet;
import io.capstan.kvstore.mvcc.StoreSnapshot;
import io.etcd.jetcd.api.AlarmMember;
import io.etcd.jetcd.api.AlarmRequest;
import io.etcd.jetcd.api.AlarmType;
import io.etcd.jetcd.api.AlarmResponse;
import io.etcd.jetcd.api.DefragmentRequest;
import io.etcd.jetcd.api.DefragmentResponse;
import io.etcd.jetcd.api.MaintenanceGrpc;
import io.etcd.jetcd.api.MoveLeaderRequest;
import io.etcd.jetcd.api.MoveLeaderResponse;
import io.etcd.jetcd.api.SnapshotRequest;
import io.etcd.jetcd.api.SnapshotResponse;
import io.etcd.jetcd.api.StatusRequest;
import io.etcd.jetcd.api.StatusResponse;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * etcd's Maintenance service: Status, Snapshot (a consistent image of the state in Capstan's own
 * snapshot format, restorable with {@code capstan kvstore-restore}), Alarm (NOSPACE while writes are refused for space) and
 * Defragment (nothing to do: the state lives in memory and in the Raft log) and MoveLeader
 * (Ratis' leadership transfer; {@code etcdctl move-leader}).
 */
final class MaintenanceService extends MaintenanceGrpc.MaintenanceImplBase {
  private static final Logger LOG = LoggerFactory.getLogger(MaintenanceService.class);
  /**
   * The version reported: the etcd API level this member implements. Kubernetes reads it as a
   * feature switch (watch progress requests are used from 3.4.31), and we answer them correctly.
   */
  static final String VERSION = "3.4.34";
  private static final int CHUNK = 32 * 1024;

  private final ServerContext ctx;
  private final Path scratchDir;

  MaintenanceService(ServerContext ctx, Path scratchDir) {
    this.ctx = ctx;
    this.scratchDir = scratchDir;
  }

  @Override
  public void moveLeader(MoveLeaderRequest request, StreamObserver<MoveLeaderResponse> observer) {
    Replies.reply(ctx.raft().moveLeader(request.getTargetID())
        .thenApply(v -> MoveLeaderResponse.newBuilder().setHeader(ctx.header(0)).build()), observer);
  }

  @Override
  public void status(StatusRequest request, StreamObserver<StatusResponse> observer) {
    Replies.replyNow(() -> {
      long size = ctx.store().approximateBytes();
      // raftAppliedIndex (7), dbSizeInUse (9) and isLearner (10) are missing from jetcd's proto.
      UnknownFieldSet extra = UnknownFieldSet.newBuilder()
          .addField(7, UnknownFieldSet.Field.newBuilder().addVarint(ctx.raft().appliedIndex()).build())
          .addField(9, UnknownFieldSet.Field.newBuilder().addVarint(size).build())
          .build();
      return StatusResponse.newBuilder()
          .setHeader(ctx.header(0))
          .setVersion(VERSION)
          .setDbSize(size)
          .setLeader(ctx.raft().leaderMemberId())
          .setRaftIndex(ctx.raft().commitIndex())
          .setRaftTerm(ctx.raft().term())
          .setUnknownFields(extra)
          .build();
    }, observer);
  }

  @Override
  public void snapshot(SnapshotRequest request, StreamObserver<SnapshotResponse> observer) {
    Path file = null;
    try {
      Files.createDirectories(scratchDir);
      file = Files.createTempFile(scratchDir, "snapshot-", ".db");
      StoreSnapshot.writeFile(ctx.store(), ctx.members(), ctx.raft().term(), ctx.raft().appliedIndex(), file);
      long remaining = io.capstan.kvstore.mvcc.SnapshotEnvelope.wrappedSize(Files.size(file));
      LOG.info("streaming a snapshot of {} bytes at revision {}", remaining, ctx.store().currentRevision());
      long[] left = {remaining};
      java.io.OutputStream chunker = new java.io.OutputStream() {
        private final byte[] buf = new byte[CHUNK];
        private int used;

        @Override
        public void write(int b) {
          write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
          while (len > 0) {
            int n = Math.min(len, CHUNK - used);
            System.arraycopy(b, off, buf, used, n);
            used += n;
            off += n;
            len -= n;
            if (used == CHUNK) {
              flush();
            }
          }
        }

        @Override
        public void flush() {
          if (used > 0) {
            left[0] -= used;
            observer.onNext(SnapshotResponse.newBuilder().setHeader(ctx.header(0))
                .setRemainingBytes(left[0]).setBlob(ByteString.copyFrom(buf, 0, used)).build());
            used = 0;
          }
        }
      };
      io.capstan.kvstore.mvcc.SnapshotEnvelope.wrap(file, chunker);
      chunker.flush();
      observer.onCompleted();
    } catch (IOException e) {
      observer.onError(Status.INTERNAL.withDescription("etcdserver: snapshot failed: " + e.getMessage()).asRuntimeException());
    } finally {
      if (file != null) {
        try {
          Files.deleteIfExists(file);
        } catch (IOException ignored) {
          // best effort
        }
      }
    }
  }

  @Override
  public void alarm(AlarmRequest request, StreamObserver<AlarmResponse> observer) {
    // NOSPACE shows while this member refuses writes for space; it clears by itself with the first
    // write accepted after a compaction made room (etcd needs an explicit disarm; DEACTIVATE is
    // accepted and changes nothing).
    Replies.replyNow(() -> {
      AlarmResponse.Builder out = AlarmResponse.newBuilder().setHeader(ctx.header(0));
      if (request.getAction() != AlarmRequest.AlarmAction.DEACTIVATE && ctx.noSpaceAlarm()
          && (request.getAlarm() == AlarmType.NONE || request.getAlarm() == AlarmType.NOSPACE)) {
        out.addAlarms(AlarmMember.newBuilder().setMemberID(ctx.raft().memberId()).setAlarm(AlarmType.NOSPACE));
      }
      return out.build();
    }, observer);
  }

  @Override
  public void defragment(DefragmentRequest request, StreamObserver<DefragmentResponse> observer) {
    Replies.replyNow(() -> DefragmentResponse.newBuilder().setHeader(ctx.header(0)).build(), observer);
  }
}
