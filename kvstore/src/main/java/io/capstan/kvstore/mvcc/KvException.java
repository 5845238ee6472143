package io.capstan.kvstore.mvcc;

import io.grpc.Status;

/**
 * A request the store refuses, with the gRPC status code and the exact message etcd gives (etcd
 * clients match on the text, so the texts here are etcd 3.4's, word for word).
 */
public final class KvException extends RuntimeException {
  private final Status.Code code;

  public KvException(Status.Code code, String message) {
    super(message, null, false, false);
    this.code = code;
  }

  public Status.Code code() {
    return code;
  }

  /** This refusal as the replicated apply reports it to the proposing member. */
  public io.capstan.kvstore.proto.ApplyError toApplyError() {
    return io.capstan.kvstore.proto.ApplyError.newBuilder().setGrpcCode(code.value()).setMessage(getMessage()).build();
  }

  /** The refusal an apply reported, back as the exception the client gets. */
  public static KvException of(io.capstan.kvstore.proto.ApplyError e) {
    return new KvException(Status.fromCodeValue(e.getGrpcCode()).getCode(), e.getMessage());
  }

  /** This error as a gRPC status, ready to hand to {@code StreamObserver.onError}. */
  public io.grpc.StatusRuntimeException toStatus() {
    return Status.fromCode(code).withDescription(getMessage()).asRuntimeException();
  }

  public static KvException compacted() {
    return new KvException(Status.Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted");
  }

  public static KvException futureRevision() {
    return new KvException(Status.Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision");
  }

  public static KvException leaseNotFound() {
    return new KvException(Status.Code.NOT_FOUND, "etcdserver: requested lease not found");
  }

  public static KvException leaseExists() {
    return new KvException(Status.Code.FAILED_PRECONDITION, "etcdserver: lease already exists");
  }

  public static KvException leaseTtlTooLarge() {
    return new KvException(Status.Code.OUT_OF_RANGE, "etcdserver: too large lease TTL");
  }

  public static KvException keyNotProvided() {
    return new KvException(Status.Code.INVALID_ARGUMENT, "etcdserver: key is not provided");
  }

  public static KvException keyNotFound() {
    return new KvException(Status.Code.INVALID_ARGUMENT, "etcdserver: key not found");
  }

  public static KvException valueProvided() {
    return new KvException(Status.Code.INVALID_ARGUMENT, "etcdserver: value is provided");
  }

  public static KvException leaseProvided() {
    return new KvException(Status.Code.INVALID_ARGUMENT, "etcdserver: lease is provided");
  }

  public static KvException tooManyOps() {
    return new KvException(Status.Code.INVALID_ARGUMENT, "etcdserver: too many operations in txn request");
  }

  public static KvException duplicateKey() {
    return new KvException(Status.Code.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request");
  }

  public static KvException noSpace() {
    return new KvException(Status.Code.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded");
  }

  public static KvException requestTooLarge() {
    return new KvException(Status.Code.INVALID_ARGUMENT, "etcdserver: request is too large");
  }

  public static KvException noLeader() {
    return new KvException(Status.Code.UNAVAILABLE, "etcdserver: no leader");
  }

  public static KvException timeout() {
    return new KvException(Status.Code.UNAVAILABLE, "etcdserver: request timed out");
  }

  /** etcd's answer when the leader that had the proposal failed before it was committed. */
  public static KvException timeoutDueToLeaderFail() {
    return new KvException(Status.Code.UNAVAILABLE, "etcdserver: request timed out, possibly due to previous leader failure");
  }

  public static KvException notLeader() {
    return new KvException(Status.Code.FAILED_PRECONDITION, "etcdserver: not leader");
  }

  public static KvException badLeaderTransferee() {
    return new KvException(Status.Code.FAILED_PRECONDITION, "etcdserver: bad leader transferee");
  }

  public static KvException leaderTransferTimeout() {
    return new KvException(Status.Code.UNAVAILABLE, "etcdserver: request timed out, leader transfer took too long");
  }

  public static KvException stopped() {
    return new KvException(Status.Code.UNAVAILABLE, "etcdserver: server stopped");
  }
}
