package io.capstan.kvstore.raft;

import com.codahale.metrics.Timer;
import io.capstan.kvstore.mvcc.KvException;
import io.capstan.kvstore.proto.ApplyResult;
import io.capstan.kvstore.proto.CallFailure;
import io.capstan.kvstore.proto.ForwardCall;
import io.capstan.kvstore.proto.ForwardCallReply;
import io.capstan.kvstore.proto.ForwardReply;
import io.capstan.kvstore.proto.ForwardRequest;
import io.capstan.kvstore.proto.LeaderCheck;
import io.capstan.kvstore.proto.LeaderCheckReply;
import io.capstan.kvstore.proto.LeaderQueryReply;
import io.capstan.kvstore.proto.LeaderQueryRequest;
import io.capstan.kvstore.proto.Query;
import io.capstan.kvstore.proto.ReadIndexReply;
import io.capstan.kvstore.proto.ReadIndexRequest;
import io.capstan.kvstore.proto.RaftCommand;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ConnectivityState;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Follower writes go to the leader's proposal queue, not into the log as entries of their own.
 *
 * <p>Through Ratis' client, each batch a follower proposed became one log entry, so three members
 * made three times the entries of one, and every entry costs an append, an fsync and an apply on
 * every member. Measured on 2 cores, 64 clients: 2,711 puts/s and 510 µs of member CPU a put when
 * the clients were spread over the members, 4,361 puts/s and 272 µs when they all used the
 * leader. Here a follower sends its batch to the leader's {@code capstan.kvstore.Forward}
 * service (on the leader's client URL, from the replicated member attributes; a {@code Propose}
 * call, carried on the long-lived {@link #CALLS} stream to that member) and the leader proposes the
 * commands through its own {@link ProposalBatcher}, where they share entries with everything else
 * it has queued, as etcd's followers hand proposals to the leader's Raft loop.
 *
 * <p>What may go this way, and what happens when it fails:
 * <ul>
 *   <li>Only commands that client requests make (put, delete, txn, compaction, lease grant and
 *       revoke, the read barrier of a linearizable read); the leader refuses any other kind, and proposes nothing of a request it refuses.
 *   <li>A member that is not (or no longer) the leader, or belongs to another cluster, refuses
 *       with FAILED_PRECONDITION before proposing anything: the follower then sends the batch
 *       through Ratis' client, which finds the leader (also when the leader's client URL is not
 *       known or not connected yet, and with members that predate this method: UNIMPLEMENTED).
 *   <li>Commands queued on a leader that loses its leadership go through Ratis' client from there;
 *       they are never forwarded a second time.
 *   <li>Any other failure leaves open whether the commands were committed. They fail with etcd's
 *       errors for that case ("request timed out", "... possibly due to previous leader
 *       failure") and are not sent again, as etcd does: a retry could apply a write twice.
 * </ul>
 */
final class LeaderForward implements AutoCloseable {
  static final String SERVICE = "capstan.kvstore.Forward";
  static final MethodDescriptor<ForwardRequest, ForwardReply> PROPOSE =
      unary("Propose", ForwardRequest.getDefaultInstance(), ForwardReply.getDefaultInstance());
  /**
   * The service's calls (the four unary methods) on one long-lived stream from this member to
   * another: each call numbered by its sender, each answer carrying that number, in whatever order
   * the calls complete, and a call that fails answered with the status the unary method would have
   * failed with. A unary call costs both ends a new HTTP/2 stream, its headers and trailers and a
   * call object; on the stream a call is one message each way. A serial put through a follower
   * makes one forward; a linearizable get through it a read index and the leader's two checks.
   */
  static final MethodDescriptor<ForwardCall, ForwardCallReply> CALLS = MethodDescriptor.<ForwardCall, ForwardCallReply>newBuilder()
      .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
      .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "Calls"))
      .setRequestMarshaller(ProtoUtils.marshaller(ForwardCall.getDefaultInstance()))
      .setResponseMarshaller(ProtoUtils.marshaller(ForwardCallReply.getDefaultInstance()))
      .build();

  /**
   * {@code -Dcapstan.forward.stream=false} makes each call a unary call, as before the stream
   * (for A/B runs). A member that does not serve the stream (UNIMPLEMENTED: an older version) gets
   * unary calls from then on.
   */
  private static final boolean STREAM = !"false".equals(System.getProperty("capstan.forward.stream"));

  /** Served by every member: whether it follows the asking leader in its term. */
  static final MethodDescriptor<LeaderCheck, LeaderCheckReply> CHECK =
      unary("Check", LeaderCheck.getDefaultInstance(), LeaderCheckReply.getDefaultInstance());
  /** Served by the leader: a read index it has confirmed with a majority. */
  static final MethodDescriptor<ReadIndexRequest, ReadIndexReply> READ_INDEX =
      unary("ReadIndex", ReadIndexRequest.getDefaultInstance(), ReadIndexReply.getDefaultInstance());
  /**
   * Served by the leader: a leader-only query (lease keep-alive, time-to-live) a follower's client
   * asked for. Not through Ratis' client: a read-type request that reaches a member no longer
   * leader goes down Ratis' follower-read path, which on the Netty transport fails inside that
   * member (its server has no async protocol) and is never answered.
   */
  static final MethodDescriptor<LeaderQueryRequest, LeaderQueryReply> QUERY =
      unary("Query", LeaderQueryRequest.getDefaultInstance(), LeaderQueryReply.getDefaultInstance());

  private static <Q extends com.google.protobuf.Message, R extends com.google.protobuf.Message> MethodDescriptor<Q, R> unary(
      String method, Q request, R reply) {
    return MethodDescriptor.<Q, R>newBuilder()
        .setType(MethodDescriptor.MethodType.UNARY)
        .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, method))
        .setRequestMarshaller(ProtoUtils.marshaller(request))
        .setResponseMarshaller(ProtoUtils.marshaller(reply))
        .build();
  }

  private static final String NOT_LEADER = "capstan: not the leader";

  private final Map<String, ManagedChannel> channels = new ConcurrentHashMap<>();
  private final Map<String, CallStream> streams = new ConcurrentHashMap<>();
  /** Members (addresses) that answered the stream with UNIMPLEMENTED: they get unary calls. */
  private final java.util.Set<String> unaryOnly = ConcurrentHashMap.newKeySet();
  /** Calls streams this member opened (one per member it calls, again after a break). */
  final AtomicLong streamsOpened = new AtomicLong();
  /** Calls this member sent on its streams. */
  final AtomicLong streamCalls = new AtomicLong();
  final AtomicLong forwardedCommands = new AtomicLong();
  final AtomicLong fallbacks = new AtomicLong();
  final AtomicLong receivedCommands = new AtomicLong();
  /** Leader-only queries this member sent to the leader ({@link #QUERY}). */
  final AtomicLong forwardedQueries = new AtomicLong();
  /** A follower's forwards, from the send to the leader's reply (or failure). */
  final Timer sends = new Timer();
  /** The leader's handling of a forward, from its arrival until its reply is ready. */
  final Timer handled = new Timer();

  /** Whether the leader takes {@code command} through this path (the rest go through Ratis). */
  static boolean forwardable(RaftCommand command) {
    return switch (command.getCommandCase()) {
      case PUT, DELETE_RANGE, TXN, COMPACTION, LEASE_GRANT, LEASE_REVOKE, READ_BARRIER -> true;
      default -> false;
    };
  }

  /**
   * Whether {@code address} ({@code host:port}) has a connected channel. An idle or failed one is
   * asked to connect, and the caller uses Ratis' client meanwhile: a request on a channel that
   * never connected would fail in a way that does not say whether it was sent.
   */
  boolean connected(String address) {
    ManagedChannel ch = channel(address);
    return ch.getState(true) == ConnectivityState.READY;
  }

  /**
   * Completes with true once {@code address}'s channel is connected, or with false after {@code
   * waitMs}; asks it to connect, and again every 20 ms after a failed attempt (a member that has
   * just won an election may open its client port a moment after its Raft port). A member's
   * first write to a new leader waits for this (a loopback or LAN connect takes a millisecond or
   * so) rather than going through Ratis' client, which after a leader change may first spend
   * seconds on a stale connection. After a wait that timed out, the same address is not waited
   * for again for {@link #GIVE_UP} (a leader whose client URL is unreachable from here costs
   * one wait, not one per write).
   */
  CompletableFuture<Boolean> whenConnected(String address, long waitMs) {
    ManagedChannel ch = channel(address);
    Long gaveUp = gaveUpAt.get(address);
    if (gaveUp != null && System.nanoTime() - gaveUp < GIVE_UP.toNanos()) {
      return CompletableFuture.completedFuture(ch.getState(true) == ConnectivityState.READY);
    }
    CompletableFuture<Boolean> connected = new CompletableFuture<>();
    watchUntilReady(ch, connected);
    return connected.completeOnTimeout(false, waitMs, TimeUnit.MILLISECONDS).whenComplete((up, error) -> {
      if (Boolean.TRUE.equals(up)) {
        gaveUpAt.remove(address);
      } else {
        gaveUpAt.put(address, System.nanoTime());
      }
    });
  }

  private static final Duration GIVE_UP = Duration.ofSeconds(10);
  private final Map<String, Long> gaveUpAt = new ConcurrentHashMap<>();

  private static void watchUntilReady(ManagedChannel ch, CompletableFuture<Boolean> connected) {
    if (connected.isDone()) {
      return;
    }
    ConnectivityState state = ch.getState(true);
    switch (state) {
      case READY -> connected.complete(true);
      case SHUTDOWN -> connected.complete(false);
      case TRANSIENT_FAILURE -> CompletableFuture.delayedExecutor(20, TimeUnit.MILLISECONDS).execute(() -> {
        ch.resetConnectBackoff();
        watchUntilReady(ch, connected);
      });
      default -> ch.notifyWhenStateChanged(state, () -> watchUntilReady(ch, connected));
    }
  }

  /** The channel to {@code address}, opened on first use. */
  private ManagedChannel channel(String address) {
    return channels.computeIfAbsent(address, LeaderForward::open);
  }

  private static ManagedChannel open(String address) {
    int colon = address.lastIndexOf(':');
    return NettyChannelBuilder.forAddress(address.substring(0, colon), Integer.parseInt(address.substring(colon + 1)))
        .usePlaintext()
        // replies are handed on at once (to the batcher and the clients), nothing blocks
        .directExecutor()
        // a reply holds every command's result, txn ranges included: no limit of its own, as a
        // refused reply would fail writes that were committed
        .maxInboundMessageSize(Integer.MAX_VALUE)
        // one long-lived stream carries every call to a member: a connection that went silent
        // without closing (a host gone, a network that drops packets) must end that stream so
        // that the next call opens another on a new connection, rather than every call on it
        // timing out one by one until TCP gives up (minutes). gRPC's shortest: 10 s of silence,
        // then a ping unanswered for 5 s; members permit pings every second (EtcdGrpcServer)
        .keepAliveTime(KEEPALIVE_SECONDS, TimeUnit.SECONDS)
        .keepAliveTimeout(KEEPALIVE_TIMEOUT_SECONDS, TimeUnit.SECONDS)
        .build();
  }

  /** Silence on a member's connection before a ping, and how long the ping may go unanswered. */
  static final long KEEPALIVE_SECONDS = 10;
  static final long KEEPALIVE_TIMEOUT_SECONDS = 5;

  /**
   * Sends {@code request} to the leader at {@code address}. Fails with {@link Refused} when the
   * receiver proposed nothing, with the gRPC status otherwise.
   */
  CompletableFuture<ForwardReply> send(String address, ForwardRequest request, long timeoutMs) {
    CompletableFuture<ForwardReply> out = new CompletableFuture<>();
    Timer.Context timing = sends.time();
    out.whenComplete((r, e) -> timing.stop());
    call(address, PROPOSE, request, timeoutMs).whenComplete((r, t) -> {
      if (t == null) {
        out.complete(r);
        return;
      }
      out.completeExceptionally(refusal(t));
    });
    forwardedCommands.addAndGet(request.getCommandsCount());
    return out;
  }

  /** Asks the member at {@code address} whether it follows {@code check}'s leader in its term; false on any failure. */
  CompletableFuture<Boolean> check(String address, LeaderCheck check, long timeoutMs) {
    return call(address, CHECK, check, timeoutMs).handle((r, e) -> e == null && r.getFollows());
  }

  /** Asks the leader at {@code address} for a confirmed read index. */
  CompletableFuture<Long> readIndex(String address, long clusterId, long timeoutMs) {
    return call(address, READ_INDEX, ReadIndexRequest.newBuilder().setClusterId(clusterId).build(), timeoutMs)
        .thenApply(ReadIndexReply::getIndex);
  }

  /**
   * Asks the leader at {@code address} to run {@code query}; its answer's bytes. Fails with {@link
   * Refused} when the receiver is not the leader, with the gRPC status otherwise (a query changes
   * nothing: any failure may be retried).
   */
  CompletableFuture<LeaderQueryReply> query(String address, long clusterId, Query query, long timeoutMs) {
    forwardedQueries.incrementAndGet();
    LeaderQueryRequest request = LeaderQueryRequest.newBuilder().setClusterId(clusterId).setQuery(query)
        .setSenderConfirms(true).build();
    CompletableFuture<LeaderQueryReply> out = new CompletableFuture<>();
    call(address, QUERY, request, timeoutMs).whenComplete((r, t) -> {
      if (t == null) {
        out.complete(r);
      } else {
        out.completeExceptionally(refusal(t));
      }
    });
    return out;
  }

  /** {@code t} as {@link Refused} when the receiver said it did nothing (not the leader, no such method), else as is. */
  private static Throwable refusal(Throwable t) {
    Status s = Status.fromThrowable(t);
    if (s.getCode() == Status.Code.UNIMPLEMENTED
        || (s.getCode() == Status.Code.FAILED_PRECONDITION && s.getDescription() != null
            && s.getDescription().startsWith("capstan: "))) {
      return new Refused(s.getDescription());
    }
    return t;
  }

  /**
   * One call of this service to the member at {@code address}, on the Calls stream to it (unary if
   * the stream is off or that member does not serve it): its reply, or its gRPC failure
   * (DEADLINE_EXCEEDED when no reply came within {@code timeoutMs}).
   */
  private <Q extends com.google.protobuf.Message, R> CompletableFuture<R> call(String address, MethodDescriptor<Q, R> method,
      Q request, long timeoutMs) {
    if (!STREAM || unaryOnly.contains(address)) {
      return unaryCall(address, method, request, timeoutMs);
    }
    ForwardCall.Builder call = ForwardCall.newBuilder();
    if (request instanceof ForwardRequest r) {
      call.setPropose(r);
    } else if (request instanceof LeaderCheck r) {
      call.setCheck(r);
    } else if (request instanceof ReadIndexRequest r) {
      call.setReadIndex(r);
    } else {
      call.setQuery((LeaderQueryRequest) request);
    }
    CompletableFuture<ForwardCallReply> reply = new CompletableFuture<>();
    CompletableFuture<R> out = new CompletableFuture<>();
    Deadlines.within(reply, timeoutMs).whenComplete((r, t) -> {
      if (t instanceof java.util.concurrent.TimeoutException) {
        out.completeExceptionally(Status.DEADLINE_EXCEEDED
            .withDescription("capstan: no reply in " + timeoutMs + " ms").asRuntimeException());
      } else if (t != null) {
        out.completeExceptionally(t);
      } else if (r.hasFailure()) {
        out.completeExceptionally(Status.fromCodeValue(r.getFailure().getCode())
            .withDescription(r.getFailure().getDescription()).asRuntimeException());
      } else {
        @SuppressWarnings("unchecked")
        R answer = (R) switch (r.getReplyCase()) {
          case PROPOSE -> r.getPropose();
          case CHECK -> r.getCheck();
          case READ_INDEX -> r.getReadIndex();
          case QUERY -> r.getQuery();
          default -> null;
        };
        // a reply's oneof field has the number of its call's (2 to 5 in both messages)
        if (answer == null || r.getReplyCase().getNumber() != call.getCallCase().getNumber()) {
          out.completeExceptionally(Status.INTERNAL.withDescription("capstan: a " + method.getBareMethodName()
              + " call answered with " + r.getReplyCase()).asRuntimeException());
        } else {
          out.complete(answer);
        }
      }
    });
    // a stream found ended is replaced once; a channel that ends every new stream at once (shut
    // down) fails the call
    for (int attempt = 0; attempt < 2; attempt++) {
      CallStream stream = stream(address);
      if (stream.send(call, reply)) {
        streamCalls.incrementAndGet();
        return out;
      }
      streams.remove(address, stream);
    }
    reply.completeExceptionally(Status.UNAVAILABLE.withDescription("capstan: no stream to " + address).asRuntimeException());
    return out;
  }

  /**
   * The Calls stream to {@code address}, opened if there is none. It is started after it is in
   * {@link #streams}, outside any update of that map: a call that fails at its start (a channel
   * in transient failure) ends at once on this thread, and its end takes it out of the map again.
   */
  private CallStream stream(String address) {
    CallStream existing = streams.get(address);
    if (existing != null) {
      return existing;
    }
    CallStream fresh = new CallStream(address, channel(address));
    existing = streams.putIfAbsent(address, fresh);
    if (existing != null) {
      return existing;
    }
    streamsOpened.incrementAndGet();
    fresh.start();
    return fresh;
  }

  /**
   * This member's Calls stream to another. Calls wait in {@link #pending} under their number
   * until their reply, their timeout, or the stream's end: a stream that ends fails every call
   * still waiting with its status, as a unary call that failed in transport (a forward's outcome
   * is then unknown), and marks a member that does not serve the stream (UNIMPLEMENTED) for unary
   * calls.
   */
  private final class CallStream extends ClientCall.Listener<ForwardCallReply> {
    private final String address;
    private final ClientCall<ForwardCall, ForwardCallReply> call;
    private final Map<Long, CompletableFuture<ForwardCallReply>> pending = new java.util.HashMap<>();
    private long lastId;
    private boolean ended;

    CallStream(String address, ManagedChannel channel) {
      this.address = address;
      this.call = newCall(channel, CALLS, CallOptions.DEFAULT);
    }

    void start() {
      call.start(this, new Metadata());
      call.request(Integer.MAX_VALUE);
    }

    /** Sends {@code request} numbered; false (nothing sent) if the stream has ended. */
    boolean send(ForwardCall.Builder request, CompletableFuture<ForwardCallReply> reply) {
      long id;
      synchronized (this) {
        if (ended) {
          return false;
        }
        id = ++lastId;
        pending.put(id, reply);
        call.sendMessage(request.setId(id).build());
      }
      // a call that timed out is forgotten: a late reply finds no one waiting
      reply.whenComplete((r, e) -> {
        if (e != null) {
          synchronized (this) {
            pending.remove(id);
          }
        }
      });
      return true;
    }

    @Override
    public void onMessage(ForwardCallReply message) {
      CompletableFuture<ForwardCallReply> waiting;
      synchronized (this) {
        waiting = pending.remove(message.getId());
      }
      if (waiting != null) {
        waiting.complete(message);
      }
    }

    @Override
    public void onClose(Status status, Metadata trailers) {
      List<CompletableFuture<ForwardCallReply>> failed;
      synchronized (this) {
        ended = true;
        failed = new ArrayList<>(pending.values());
        pending.clear();
      }
      streams.remove(address, this);
      if (status.getCode() == Status.Code.UNIMPLEMENTED) {
        unaryOnly.add(address);
      }
      Status end = status.isOk() ? Status.UNAVAILABLE.withDescription("capstan: the Calls stream from " + address + " ended")
          : status.getDescription() == null ? status.withDescription("the Calls stream to " + address + " ended")
          : status;
      failed.forEach(f -> f.completeExceptionally(end.asRuntimeException()));
    }
  }

  /** One unary call of this service to the member at {@code address}: its reply, or its gRPC failure. */
  private <Q, R> CompletableFuture<R> unaryCall(String address, MethodDescriptor<Q, R> method, Q request, long timeoutMs) {
    CompletableFuture<R> out = new CompletableFuture<>();
    ClientCalls.asyncUnaryCall(newCall(channel(address), method, CallOptions.DEFAULT
        .withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS)), request, new StreamObserver<>() {
      @Override
      public void onNext(R reply) {
        out.complete(reply);
      }

      @Override
      public void onError(Throwable t) {
        out.completeExceptionally(t);
      }

      @Override
      public void onCompleted() {
        if (!out.isDone()) {
          out.completeExceptionally(Status.INTERNAL.withDescription("no reply").asRuntimeException());
        }
      }
    });
    return out;
  }

  /**
   * A call of this member's, outside the gRPC context of the thread that makes it (a client's
   * call being served, or another call's callback): a call keeps the context current when it is
   * created, and that context's cancellation or deadline would end it. The Calls stream belongs
   * to the member, and a forward may carry several clients' commands and has its own deadline.
   */
  private static <Q, R> ClientCall<Q, R> newCall(ManagedChannel channel, MethodDescriptor<Q, R> method, CallOptions options) {
    Context previous = Context.ROOT.attach();
    try {
      return channel.newCall(method, options);
    } finally {
      Context.ROOT.detach(previous);
    }
  }

  /** The receiver did not propose any of the commands: they may be sent another way. */
  static final class Refused extends RuntimeException {
    Refused(String message) {
      super(message, null, false, false);
    }
  }

  /** The service, served on the member's client port: the unary methods, and the Calls stream carrying them. */
  ServerServiceDefinition service(RaftNode node) {
    return ServerServiceDefinition.builder(SERVICE)
        .addMethod(PROPOSE, ServerCalls.asyncUnaryCall((request, observer) -> propose(node, request, observer)))
        .addMethod(CHECK, ServerCalls.asyncUnaryCall((request, observer) -> check(node, request, observer)))
        .addMethod(READ_INDEX, ServerCalls.asyncUnaryCall((request, observer) -> readIndex(node, request, observer)))
        .addMethod(QUERY, ServerCalls.asyncUnaryCall((request, observer) -> query(node, request, observer)))
        .addMethod(CALLS, ServerCalls.asyncBidiStreamingCall(observer -> calls(node, observer)))
        .build();
  }

  private static void check(RaftNode node, LeaderCheck request, StreamObserver<LeaderCheckReply> observer) {
    observer.onNext(LeaderCheckReply.newBuilder().setFollows(request.getClusterId() == node.clusterId()
        && node.follows(request.getTerm(), request.getLeader())).build());
    observer.onCompleted();
  }

  private static void readIndex(RaftNode node, ReadIndexRequest request, StreamObserver<ReadIndexReply> observer) {
    if (otherCluster(node, request.getClusterId(), observer)) {
      return;
    }
    node.leaderReadIndex().whenComplete((index, e) -> {
      if (e != null) {
        observer.onError(Status.UNAVAILABLE.withDescription("capstan: no read index: " + unwrap(e).getMessage()).asRuntimeException());
      } else {
        observer.onNext(ReadIndexReply.newBuilder().setIndex(index).build());
        observer.onCompleted();
      }
    });
  }

  private static void query(RaftNode node, LeaderQueryRequest request, StreamObserver<LeaderQueryReply> observer) {
    if (otherCluster(node, request.getClusterId(), observer)) {
      return;
    }
    if (!node.isLeader()) {
      observer.onError(Status.FAILED_PRECONDITION.withDescription(NOT_LEADER).asRuntimeException());
      return;
    }
    node.queryAsLeader(request.getQuery(), request.getSenderConfirms()).whenComplete((answer, e) -> {
      if (e == null) {
        observer.onNext(LeaderQueryReply.newBuilder().setAnswer(com.google.protobuf.UnsafeByteOperations.unsafeWrap(answer.bytes()))
            .setTerm(answer.term()).build());
        observer.onCompleted();
      } else if (unwrap(e) instanceof org.apache.ratis.protocol.exceptions.NotLeaderException) {
        observer.onError(Status.FAILED_PRECONDITION.withDescription(NOT_LEADER).asRuntimeException());
      } else {
        observer.onError(Status.UNAVAILABLE.withDescription("capstan: query failed: " + unwrap(e)).asRuntimeException());
      }
    });
  }

  /** Refuses a request from a member of another cluster (true) before anything is done for it. */
  private static boolean otherCluster(RaftNode node, long clusterId, StreamObserver<?> observer) {
    if (clusterId == node.clusterId()) {
      return false;
    }
    observer.onError(Status.FAILED_PRECONDITION.withDescription("capstan: cluster ID mismatch (this member is in cluster "
        + Long.toHexString(node.clusterId()) + ", the sender in " + Long.toHexString(clusterId) + ")").asRuntimeException());
    return true;
  }

  /**
   * The Calls stream: each call runs in the unary method's handler, with an observer that answers
   * it on the stream under its number (a failure as its status). Answers come from several
   * threads (the apply thread, the event loop, the read executor), so they are sent under the
   * stream's lock; a stream its sender cancelled drops them. A sender that half-closes gets the
   * stream's end once every call it made is answered.
   */
  private StreamObserver<ForwardCall> calls(RaftNode node, StreamObserver<ForwardCallReply> observer) {
    var out = (io.grpc.stub.ServerCallStreamObserver<ForwardCallReply>) observer;
    return new StreamObserver<>() {
      private int unanswered;
      private boolean halfClosed;
      private boolean ended;

      {
        out.setOnCancelHandler(() -> {
          synchronized (out) {
            ended = true;
          }
        });
      }

      @Override
      public void onNext(ForwardCall call) {
        synchronized (out) {
          unanswered++;
        }
        long id = call.getId();
        switch (call.getCallCase()) {
          case PROPOSE -> run(this.<ForwardReply>answer(id, ForwardCallReply.Builder::setPropose), o -> propose(node, call.getPropose(), o));
          case CHECK -> run(this.<LeaderCheckReply>answer(id, ForwardCallReply.Builder::setCheck), o -> check(node, call.getCheck(), o));
          case READ_INDEX -> run(this.<ReadIndexReply>answer(id, ForwardCallReply.Builder::setReadIndex), o -> readIndex(node, call.getReadIndex(), o));
          case QUERY -> run(this.<LeaderQueryReply>answer(id, ForwardCallReply.Builder::setQuery), o -> query(node, call.getQuery(), o));
          default -> this.<LeaderCheckReply>answer(id, ForwardCallReply.Builder::setCheck).onError(Status.UNIMPLEMENTED
              .withDescription("capstan: an empty or unknown call").asRuntimeException());
        }
      }

      /**
       * Runs a handler; one that throws fails its own call (INTERNAL), not the stream and every
       * call on it.
       */
      private <R> void run(StreamObserver<R> answer, java.util.function.Consumer<StreamObserver<R>> handler) {
        try {
          handler.accept(answer);
        } catch (RuntimeException e) {
          answer.onError(Status.INTERNAL.withDescription("capstan: the call failed: " + e).asRuntimeException());
        }
      }

      /** The observer a handler answers call {@code id} through; only its first answer is sent. */
      private <R> StreamObserver<R> answer(long id, java.util.function.BiFunction<ForwardCallReply.Builder, R, ForwardCallReply.Builder> set) {
        return new StreamObserver<>() {
          private R reply;
          private boolean answered;

          @Override
          public synchronized void onNext(R value) {
            reply = value;
          }

          @Override
          public void onError(Throwable t) {
            Status s = Status.fromThrowable(t);
            answerOnce(ForwardCallReply.newBuilder().setId(id).setFailure(CallFailure.newBuilder().setCode(s.getCode().value())
                .setDescription(s.getDescription() == null ? "" : s.getDescription())));
          }

          @Override
          public void onCompleted() {
            R value;
            synchronized (this) {
              value = reply;
            }
            answerOnce(value == null
                ? ForwardCallReply.newBuilder().setId(id).setFailure(CallFailure.newBuilder()
                    .setCode(Status.Code.INTERNAL.value()).setDescription("capstan: no reply"))
                : set.apply(ForwardCallReply.newBuilder().setId(id), value));
          }

          private void answerOnce(ForwardCallReply.Builder message) {
            synchronized (this) {
              if (answered) {
                return;
              }
              answered = true;
            }
            send(message);
          }
        };
      }

      private void send(ForwardCallReply.Builder reply) {
        synchronized (out) {
          unanswered--;
          if (ended) {
            return;
          }
          out.onNext(reply.build());
          if (halfClosed && unanswered == 0) {
            ended = true;
            out.onCompleted();
          }
        }
      }

      @Override
      public void onError(Throwable t) {
        synchronized (out) {
          ended = true;
        }
      }

      @Override
      public void onCompleted() {
        synchronized (out) {
          halfClosed = true;
          if (unanswered == 0 && !ended) {
            ended = true;
            out.onCompleted();
          }
        }
      }
    };
  }

  private void propose(RaftNode node, ForwardRequest request, StreamObserver<ForwardReply> observer) {
    if (otherCluster(node, request.getClusterId(), observer)) {
      return;
    }
    for (RaftCommand c : request.getCommandsList()) {
      if (!forwardable(c)) {
        observer.onError(Status.INVALID_ARGUMENT.withDescription("capstan: a " + c.getCommandCase()
            + " command cannot be forwarded").asRuntimeException());
        return;
      }
    }
    if (!node.isLeader()) {
      observer.onError(Status.FAILED_PRECONDITION.withDescription(NOT_LEADER).asRuntimeException());
      return;
    }
    receivedCommands.addAndGet(request.getCommandsCount());
    Timer.Context timing = handled.time();
    List<CompletableFuture<ApplyResult>> results = new ArrayList<>(request.getCommandsCount());
    for (RaftCommand c : request.getCommandsList()) {
      results.add(node.proposeForwarded(c).handle((r, e) -> e == null ? r : asResult(e)));
    }
    CompletableFuture.allOf(results.toArray(CompletableFuture[]::new)).whenComplete((v, e) -> {
      ForwardReply.Builder reply = ForwardReply.newBuilder();
      results.forEach(f -> reply.addResults(f.join()));
      timing.stop();
      observer.onNext(reply.setAppliedIndex(node.appliedIndex()).build());
      observer.onCompleted();
    });
  }

  private static ApplyResult asResult(Throwable error) {
    Throwable e = unwrap(error);
    KvException kv = e instanceof KvException k ? k : KvException.timeout();
    return ApplyResult.newBuilder().setError(kv.toApplyError()).build();
  }

  /** Whether a forward's failure means none of its commands was proposed. */
  static boolean refused(Throwable error) {
    Throwable e = unwrap(error);
    return e instanceof Refused;
  }

  private static Throwable unwrap(Throwable error) {
    return error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
  }

  @Override
  public void close() {
    channels.values().forEach(ManagedChannel::shutdownNow);
  }
}
