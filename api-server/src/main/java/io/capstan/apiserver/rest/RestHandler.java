package io.capstan.apiserver.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import io.capstan.api.server.v1.BindRequest;
import io.capstan.api.server.v1.CreateRequest;
import io.capstan.api.server.v1.DeleteRequest;
import io.capstan.api.server.v1.DeleteResponse;
import io.capstan.api.server.v1.GetRequest;
import io.capstan.api.server.v1.ListRequest;
import io.capstan.api.server.v1.ListResponse;
import io.capstan.api.server.v1.PatchRequest;
import io.capstan.api.server.v1.RawObject;
import io.capstan.api.server.v1.ResourceRef;
import io.capstan.api.server.v1.UpdateRequest;
import io.capstan.apiserver.grpc.ApiServerService;
import io.capstan.apiserver.grpc.Patches;
import io.capstan.apiserver.registry.Registry;
import io.capstan.apiserver.registry.ResourceType;
import io.capstan.apiserver.storage.ApiException;
import io.capstan.apiserver.watch.WatchCache;
import io.capstan.common.http.HttpCall;
import io.capstan.common.http.HttpServer;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Kubernetes' REST API over the same service the gRPC API uses: {@code /api/v1/...} and
 * {@code /apis/<group>/<version>/...}, namespaced and cluster-scoped paths, {@code ?watch=true}
 * streams, selectors, {@code limit}/{@code continue}, and errors as {@code Status} bodies. Runs on
 * the Netty {@link HttpServer}: handlers may block on the kvstore; watches hold no thread.
 */
public final class RestHandler implements HttpServer.Handler {
  private static final Logger LOG = LoggerFactory.getLogger(RestHandler.class);
  /** Bodies larger than this are refused (413) before they are parsed; objects are limited to 1.5 MiB later. */
  public static final int MAX_BODY = 3 * 1024 * 1024;
  /** How often a watch that allows bookmarks gets one when nothing else happens. */
  private static final Duration REST_BOOKMARK_PERIOD = Duration.ofSeconds(10);
  private static final String APPLY = "application/apply-patch+yaml";
  private static final com.fasterxml.jackson.dataformat.yaml.YAMLMapper YAML = com.fasterxml.jackson.dataformat.yaml.YAMLMapper.builder()
      .disable(com.fasterxml.jackson.dataformat.yaml.YAMLGenerator.Feature.WRITE_DOC_START_MARKER)
      .enable(com.fasterxml.jackson.dataformat.yaml.YAMLGenerator.Feature.MINIMIZE_QUOTES).build();
  private final ApiServerService service;
  private final Registry registry;
  private final Discovery discovery;
  private final OpenApi openApi;

  public RestHandler(ApiServerService service, Registry registry) {
    this.service = service;
    this.registry = registry;
    this.discovery = new Discovery(registry);
    this.openApi = new OpenApi(registry);
  }

  /** A parsed resource path. */
  private record Target(ResourceType type, String namespace, String name, String subresource) {}

  @Override
  public void handle(HttpCall call) throws IOException {
    try {
      route(call);
    } catch (ApiException e) {
      send(call, e.code(), KubeJson.toJson(e.status()));
    } catch (StatusRuntimeException e) {
      ApiException api = fromGrpc(e);
      send(call, api.code(), KubeJson.toJson(api.status()));
    } catch (RuntimeException e) {
      LOG.warn("request {} {} failed", call.method(), call.uri(), e);
      ApiException api = ApiException.of(500, "InternalError", "internal error: " + e);
      send(call, 500, KubeJson.toJson(api.status()));
    }
  }

  @Override
  public void refuse(HttpCall call, int code, String message) {
    String reason = switch (code) {
      case 400 -> "BadRequest";
      case 413 -> "RequestEntityTooLarge";
      case 429 -> "TooManyRequests";
      case 503 -> "ServiceUnavailable";
      default -> "InternalError";
    };
    try {
      send(call, code, KubeJson.toJson(ApiException.of(code, reason, message).status()));
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private void route(HttpCall ex) throws IOException {
    String path = io.netty.handler.codec.http.QueryStringDecoder.decodeComponent(ex.path());
    Map<String, String> q = query(ex.rawQuery());
    String[] s = path.replaceAll("^/+|/+$", "").split("/");
    if (path.equals("/version") || path.equals("/version/")) {
      send(ex, 200, discovery.version());
      return;
    }
    if (path.equals("/openapi/v3") || path.equals("/openapi/v3/")) {
      send(ex, 200, openApi.index());
      return;
    }
    if (path.startsWith("/openapi/v3/")) {
      ObjectNode doc = openApi.document(path.substring("/openapi/v3/".length()).replaceAll("/+$", ""));
      if (doc == null) {
        throw ApiException.noSuchPath();
      }
      send(ex, 200, doc);
      return;
    }
    if (path.equals("/api") || path.equals("/api/")) {
      send(ex, 200, discovery.api());
      return;
    }
    if (path.equals("/apis") || path.equals("/apis/")) {
      send(ex, 200, discovery.apis());
      return;
    }
    String group;
    String version;
    int rest;
    if (s.length >= 2 && s[0].equals("api")) {
      group = "";
      version = s[1];
      rest = 2;
    } else if (s.length >= 3 && s[0].equals("apis")) {
      group = s[1];
      version = s[2];
      rest = 3;
    } else {
      throw ApiException.noSuchPath();
    }
    if (s.length == rest) {
      ObjectNode doc = discovery.resources(group, version);
      if (doc == null) {
        throw ApiException.noSuchPath();
      }
      send(ex, 200, doc);
      return;
    }
    Target t = target(group, version, s, rest);
    boolean allowed = switch (t.subresource()) {
      case "binding" -> ex.method().equals("POST");
      case "status", "scale" -> !ex.method().equals("POST") && !ex.method().equals("DELETE");
      default -> true;
    };
    if (!allowed) {
      throw ApiException.of(405, "MethodNotAllowed", ex.method() + " is not supported on " + t.type().resource() + "/" + t.subresource());
    }
    switch (ex.method()) {
      case "GET" -> get(ex, t, q);
      case "POST" -> post(ex, t, q);
      case "PUT" -> put(ex, t, q);
      case "PATCH" -> patch(ex, t, q);
      case "DELETE" -> delete(ex, t, q);
      default -> throw ApiException.of(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    }
  }

  private Target target(String group, String version, String[] s, int i) {
    String ns = "";
    if (s.length >= i + 3 && s[i].equals("namespaces")) {
      var inner = registry.find(group, s[i + 2]);
      if (inner.isPresent() && inner.get().namespaced()) {
        ns = s[i + 1];
        i += 2;
      }
    }
    String resource = s[i];
    ResourceType type = registry.find(group, resource).filter(t -> t.version().equals(version))
        .orElseThrow(ApiException::noSuchPath);
    String name = s.length > i + 1 ? s[i + 1] : "";
    String sub = s.length > i + 2 ? s[i + 2] : "";
    boolean knownSub = sub.isEmpty() || (sub.equals("status") && type.hasStatus())
        || (sub.equals("binding") && type.resource().equals("pods")) || (sub.equals("scale") && type.scalable());
    if (s.length > i + 3 || !knownSub) {
      throw ApiException.noSuchPath();
    }
    return new Target(type, ns, name, sub);
  }

  private static ResourceRef ref(Target t) {
    return ResourceRef.newBuilder().setGroup(t.type().group()).setVersion(t.type().version())
        .setResource(t.type().resource()).setNamespace(t.namespace()).setName(t.name()).build();
  }

  // ------------------------------------------------------------------ verbs

  private void get(HttpCall ex, Target t, Map<String, String> q) throws IOException {
    boolean watch = "true".equals(q.get("watch")) || "1".equals(q.get("watch"));
    if (watch) {
      watch(ex, t, q);
      return;
    }
    boolean table = Tables.wanted(ex.header("Accept"));
    String include = q.getOrDefault("includeObject", "");
    if (!t.name().isEmpty()) {
      RawObject o = call(obs -> service.get(GetRequest.newBuilder().setRef(ref(t)).build(), obs));
      Message m = parse(t, o);
      if (t.subresource().equals("scale")) {
        send(ex, 200, scale(m));
        return;
      }
      send(ex, 200, table ? Tables.table(t.type(), java.util.List.of(m), "", "", include, java.time.Instant.now()) : KubeJson.toJson(m));
      return;
    }
    ListResponse list = call(obs -> service.list(ListRequest.newBuilder().setRef(ref(t))
        .setLabelSelector(q.getOrDefault("labelSelector", "")).setFieldSelector(q.getOrDefault("fieldSelector", ""))
        .setLimit(parseLong(q.getOrDefault("limit", "0"))).setContinue(q.getOrDefault("continue", ""))
        .setResourceVersion(q.getOrDefault("resourceVersion", "")).build(), obs));
    if (table) {
      java.util.List<Message> objects = new java.util.ArrayList<>();
      list.getItemsList().forEach(o -> objects.add(parse(t, o)));
      send(ex, 200, Tables.table(t.type(), objects, list.getMetadata().getResourceVersion(), list.getMetadata().getContinue(),
          include, java.time.Instant.now()));
      return;
    }
    ObjectNode out = KubeJson.JSON.createObjectNode().put("kind", t.type().kind() + "List").put("apiVersion", t.type().apiVersion());
    ObjectNode meta = out.putObject("metadata").put("resourceVersion", list.getMetadata().getResourceVersion());
    if (!list.getMetadata().getContinue().isEmpty()) {
      meta.put("continue", list.getMetadata().getContinue());
    }
    ArrayNode items = out.putArray("items");
    for (RawObject o : list.getItemsList()) {
      items.add(KubeJson.toJson(parse(t, o)));
    }
    send(ex, 200, out);
  }

  /**
   * A {@code ?watch=true} stream: one JSON event per line. As in Kubernetes, the response is 200
   * and a watch that cannot start (a resourceVersion too old for the cache) sends one ERROR event
   * carrying the Status (410 Expired) and ends. Events are written by the watch cache as they
   * happen, under its lock, so they leave in version order; no thread waits on the stream.
   */
  private void watch(HttpCall ex, Target t, Map<String, String> q) throws IOException {
    ResourceRef r = ref(t);
    String field = q.getOrDefault("fieldSelector", "");
    boolean bookmarks = "true".equals(q.get("allowWatchBookmarks"));
    long timeout = Math.max(1, Math.min(parseLong(q.getOrDefault("timeoutSeconds", "1800")), 3600));
    String rv = q.getOrDefault("resourceVersion", "");
    boolean table = Tables.wanted(ex.header("Accept"));
    String include = q.getOrDefault("includeObject", "");
    HttpCall.Stream stream = ex.stream(200, "application/json");
    Runnable cancel;
    try {
      cancel = service.watchObjects(r.toBuilder().setName("").build(), rv, q.getOrDefault("labelSelector", ""),
          field.isEmpty() && !t.name().isEmpty() ? "metadata.name=" + t.name() : field, e -> {
            if (e.type().equals("ERROR")) {
              stream.write(errorEvent(ApiException.expired("the watch cache was reset; relist")));
              stream.end();
              return false;
            }
            return stream.write(table ? tableEvent(t, e, include) : e.jsonLine(RestHandler::event));
          });
    } catch (ApiException e) {
      stream.write(errorEvent(e));
      stream.end();
      return;
    }
    stream.onFinish(cancel);
    stream.after(Duration.ofSeconds(timeout), stream::end);
    if (bookmarks) {
      stream.every(REST_BOOKMARK_PERIOD, () -> service.atCachedRevision(r, version -> {
        ObjectNode bm = KubeJson.JSON.createObjectNode().put("type", "BOOKMARK");
        bm.putObject("object").put("kind", t.type().kind()).put("apiVersion", t.type().apiVersion())
            .putObject("metadata").put("resourceVersion", Long.toString(version));
        stream.write(line(bm));
      }));
    }
  }

  private static byte[] event(WatchCache.ObjectEvent e) {
    ObjectNode ev = KubeJson.JSON.createObjectNode().put("type", e.type());
    ev.set("object", KubeJson.toJson(e.object()));
    return line(ev);
  }

  /** A watch event whose object is a one-row Table, for a client that watches as Tables (kubectl get -w). */
  private static byte[] tableEvent(Target t, WatchCache.ObjectEvent e, String include) {
    ObjectNode ev = KubeJson.JSON.createObjectNode().put("type", e.type());
    ev.set("object", Tables.table(t.type(), java.util.List.of(e.object()), Long.toString(e.revision()), "", include,
        java.time.Instant.now()));
    return line(ev);
  }

  /**
   * Server-side apply ({@code kubectl apply --server-side}), without field ownership: the applied
   * configuration creates the object if it is missing, else is merged into it as a strategic
   * merge patch (lists by their merge keys). Unlike Kubernetes, no managedFields are kept, so
   * fields dropped from the configuration stay set and appliers never conflict.
   */
  private void apply(HttpCall ex, Target t, Map<String, String> q) throws IOException {
    if (q.getOrDefault("fieldManager", "").isEmpty()) {
      throw ApiException.badRequest("PATCH, application/apply-patch+yaml requires fieldManager parameter");
    }
    JsonNode config;
    try {
      config = YAML.readTree(body(ex));
    } catch (com.fasterxml.jackson.core.JacksonException e) {
      throw ApiException.badRequest("the applied configuration is not valid YAML: " + e.getOriginalMessage());
    }
    if (config == null || !config.isObject()) {
      throw ApiException.badRequest("the applied configuration must be an object");
    }
    if (!config.path("kind").asText().equals(t.type().kind()) || !config.path("apiVersion").asText().equals(t.type().apiVersion())) {
      throw ApiException.badRequest("the applied configuration must name apiVersion " + t.type().apiVersion() + " and kind "
          + t.type().kind());
    }
    validateFields(ex, t, config, q);
    ObjectNode withName = ((ObjectNode) config).deepCopy();
    ((ObjectNode) withName.with("metadata")).put("name", t.name());
    RawObject o;
    int code = 200;
    try {
      o = call(obs -> service.patch(PatchRequest.newBuilder().setRef(ref(t)).setMergePatch(withName.toString())
          .setPatchType(Patches.STRATEGIC).build(), obs));
    } catch (StatusRuntimeException e) {
      if (fromGrpc(e).code() != 404) {
        throw e;
      }
      Message obj = KubeJson.fromJson(withName, t.type().prototype());
      o = call(obs -> service.create(CreateRequest.newBuilder().setRef(ref(t).toBuilder().setName(""))
          .setObject(RawObject.newBuilder().setData(obj.toByteString())).build(), obs));
      code = 201;
    }
    send(ex, code, KubeJson.toJson(parse(t, o)));
  }

  /**
   * Server-side field validation ({@code ?fieldValidation=}), which kubectl asks for instead of
   * validating against the OpenAPI document itself: fields the kind does not have fail the request
   * with {@code Strict}, come back as {@code Warning} headers with {@code Warn} (the default, as
   * in Kubernetes), and are dropped silently with {@code Ignore}.
   */
  private static void validateFields(HttpCall ex, Target t, JsonNode body, Map<String, String> q) {
    String mode = q.getOrDefault("fieldValidation", "Warn");
    if (!mode.equals("Strict") && !mode.equals("Warn") && !mode.equals("Ignore")) {
      throw ApiException.badRequest("fieldValidation must be one of Strict, Warn or Ignore, not \"" + mode + "\"");
    }
    if (mode.equals("Ignore") || t.subresource().equals("scale") || t.subresource().equals("binding")) {
      return;
    }
    java.util.List<String> unknown = KubeJson.unknownFields(body, t.type().prototype().getDescriptorForType());
    if (unknown.isEmpty()) {
      return;
    }
    java.util.List<String> messages = unknown.stream().map(f -> "unknown field \"" + f + "\"").toList();
    if (mode.equals("Strict")) {
      throw ApiException.badRequest(t.type().kind() + " in version \"" + t.type().version() + "\" cannot be handled as a "
          + t.type().kind() + ": strict decoding error: " + String.join(", ", messages));
    }
    ex.responseHeader("Warning", String.join(", ", messages.stream()
        .map(m -> "299 - \"" + m.replace("\\", "\\\\").replace("\"", "\\\"") + "\"").toList()));
  }

  /** The autoscaling/v1 Scale of a scalable object: its desired and current replicas and its pod selector. */
  private static ObjectNode scale(Message m) {
    ObjectNode json = KubeJson.toJson(m);
    ObjectNode out = KubeJson.JSON.createObjectNode().put("kind", "Scale").put("apiVersion", "autoscaling/v1");
    ObjectNode meta = out.putObject("metadata");
    for (String f : new String[] {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"}) {
      if (json.path("metadata").has(f)) {
        meta.set(f, json.path("metadata").get(f));
      }
    }
    out.putObject("spec").put("replicas", json.path("spec").path("replicas").asInt(0));
    java.util.List<String> selector = new java.util.ArrayList<>();
    json.path("spec").path("selector").path("matchLabels").fields()
        .forEachRemaining(e -> selector.add(e.getKey() + "=" + e.getValue().asText()));
    out.putObject("status").put("replicas", json.path("status").path("replicas").asInt(0)).put("selector", String.join(",", selector));
    return out;
  }

  private static ApiException invalidScale(Target t, String value) {
    return new ApiException(422, "Invalid", "Scale.autoscaling \"" + t.name() + "\" is invalid: spec.replicas: Invalid value: "
        + value + ": must be greater than or equal to 0", io.capstan.api.meta.v1.StatusDetails.newBuilder().setName(t.name())
        .setKind("Scale").addCauses(io.capstan.api.meta.v1.StatusCause.newBuilder().setReason("FieldValueInvalid")
            .setField("spec.replicas").setMessage("Invalid value: " + value + ": must be greater than or equal to 0")).build());
  }

  private static byte[] errorEvent(ApiException e) {
    ObjectNode ev = KubeJson.JSON.createObjectNode().put("type", "ERROR");
    ev.set("object", KubeJson.toJson(e.status()));
    return line(ev);
  }

  private static byte[] line(ObjectNode node) {
    try {
      byte[] json = KubeJson.JSON.writeValueAsBytes(node);
      byte[] out = java.util.Arrays.copyOf(json, json.length + 1);
      out[json.length] = '\n';
      return out;
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private void post(HttpCall ex, Target t, Map<String, String> q) throws IOException {
    if (!t.name().isEmpty() && t.subresource().isEmpty()) {
      throw ApiException.of(405, "MethodNotAllowed", "POST is not supported on a named " + t.type().kind()
          + "; create through the collection, change through PUT or PATCH");
    }
    JsonNode body = document(ex);
    if (t.subresource().equals("binding")) {
      JsonNode b = body;
      RawObject o = call(obs -> service.bind(BindRequest.newBuilder().setRef(ref(t)).setNodeName(b.path("target").path("name").asText())
          .setPodUid(b.path("metadata").path("uid").asText()).build(), obs));
      send(ex, 201, KubeJson.toJson(parse(t, o)));
      return;
    }
    validateFields(ex, t, body, q);
    Message obj = KubeJson.fromJson(body, t.type().prototype());
    RawObject o = call(obs -> service.create(CreateRequest.newBuilder().setRef(ref(t))
        .setObject(RawObject.newBuilder().setData(obj.toByteString())).build(), obs));
    send(ex, 201, KubeJson.toJson(parse(t, o)));
  }

  private void put(HttpCall ex, Target t, Map<String, String> q) throws IOException {
    if (t.subresource().equals("scale")) {
      JsonNode scale = document(ex);
      JsonNode replicas = scale.path("spec").path("replicas");
      if (!replicas.canConvertToInt() || replicas.asInt() < 0) {
        throw invalidScale(t, replicas.toString());
      }
      Message current = parse(t, call(obs -> service.get(GetRequest.newBuilder().setRef(ref(t)).build(), obs)));
      ObjectNode json = KubeJson.toJson(current);
      ((ObjectNode) json.path("spec")).put("replicas", replicas.asInt());
      String rv = scale.path("metadata").path("resourceVersion").asText("");
      ((ObjectNode) json.path("metadata")).put("resourceVersion", rv.isEmpty() ? io.capstan.apiserver.storage.StoredObjects.meta(current).getResourceVersion() : rv);
      Message next = KubeJson.fromJson(json, t.type().prototype());
      RawObject o = call(obs -> service.update(UpdateRequest.newBuilder().setRef(ref(t))
          .setObject(RawObject.newBuilder().setData(next.toByteString())).build(), obs));
      send(ex, 200, scale(parse(t, o)));
      return;
    }
    JsonNode doc = document(ex);
    validateFields(ex, t, doc, q);
    Message obj = KubeJson.fromJson(doc, t.type().prototype());
    UpdateRequest req = UpdateRequest.newBuilder().setRef(ref(t)).setObject(RawObject.newBuilder().setData(obj.toByteString())).build();
    RawObject o = t.subresource().equals("status") ? call(obs -> service.updateStatus(req, obs)) : call(obs -> service.update(req, obs));
    send(ex, 200, KubeJson.toJson(parse(t, o)));
  }

  private void patch(HttpCall ex, Target t, Map<String, String> q) throws IOException {
    String type = String.valueOf(ex.header("Content-Type")).split(";")[0].trim();
    if (type.equals(APPLY) && t.subresource().isEmpty()) {
      apply(ex, t, q);
      return;
    }
    if (!type.equals(Patches.MERGE) && !type.equals(Patches.STRATEGIC) && !type.equals(Patches.JSON_PATCH)) {
      throw ApiException.of(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types "
          + "include: " + Patches.JSON_PATCH + ", " + Patches.MERGE + ", " + Patches.STRATEGIC
          + ", " + APPLY + " (on objects, not subresources)");
    }
    String patch = new String(body(ex), StandardCharsets.UTF_8);
    if (t.subresource().equals("scale")) {
      Message current = parse(t, call(obs -> service.get(GetRequest.newBuilder().setRef(ref(t)).build(), obs)));
      JsonNode replicas = Patches.applyToJson(scale(current), patch, type).path("spec").path("replicas");
      if (!replicas.canConvertToInt() || replicas.asInt() < 0) {
        throw invalidScale(t, replicas.toString());
      }
      RawObject o = call(obs -> service.patch(PatchRequest.newBuilder().setRef(ref(t))
          .setMergePatch("{\"spec\":{\"replicas\":" + replicas.asInt() + "}}").setPatchType(Patches.MERGE).build(), obs));
      send(ex, 200, scale(parse(t, o)));
      return;
    }
    if (!type.equals(Patches.JSON_PATCH)) {
      try {
        validateFields(ex, t, KubeJson.JSON.readTree(patch), q);
      } catch (com.fasterxml.jackson.core.JacksonException malformed) {
        // the patch itself reports it
      }
    }
    RawObject o = call(obs -> service.patch(PatchRequest.newBuilder().setRef(ref(t)).setStatus(t.subresource().equals("status"))
        .setMergePatch(patch).setPatchType(type).build(), obs));
    send(ex, 200, KubeJson.toJson(parse(t, o)));
  }

  private void delete(HttpCall ex, Target t, Map<String, String> q) throws IOException {
    DeleteRequest.Builder req = DeleteRequest.newBuilder().setRef(ref(t));
    JsonNode opts = ex.body().length > 0 ? document(ex) : KubeJson.JSON.createObjectNode();
    if (q.containsKey("gracePeriodSeconds")) {
      req.setGracePeriodSeconds(parseLong(q.get("gracePeriodSeconds")));
    } else if (opts.has("gracePeriodSeconds")) {
      req.setGracePeriodSeconds(opts.get("gracePeriodSeconds").asLong());
    }
    req.setPropagationPolicy(q.getOrDefault("propagationPolicy", opts.path("propagationPolicy").asText("")));
    req.setPreconditionResourceVersion(opts.path("preconditions").path("resourceVersion").asText(""));
    req.setPreconditionUid(opts.path("preconditions").path("uid").asText(""));
    DeleteResponse r = call(obs -> service.delete(req.build(), obs));
    send(ex, r.getPending() ? 202 : 200, KubeJson.toJson(parse(t, r.getObject())));
  }

  // ------------------------------------------------------------------ plumbing

  private static Message parse(Target t, RawObject o) {
    try {
      return t.type().prototype().getParserForType().parseFrom(o.getData());
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Calls a unary service method in-process and returns its answer or throws its error. */
  private static <T> T call(java.util.function.Consumer<StreamObserver<T>> method) {
    Object[] result = new Object[1];
    Throwable[] error = new Throwable[1];
    method.accept(new StreamObserver<>() {
      @Override
      public void onNext(T v) {
        result[0] = v;
      }

      @Override
      public void onError(Throwable t) {
        error[0] = t;
      }

      @Override
      public void onCompleted() {}
    });
    if (error[0] instanceof StatusRuntimeException e) {
      throw e;
    }
    if (error[0] != null) {
      throw new IllegalStateException(error[0]);
    }
    @SuppressWarnings("unchecked")
    T t = (T) result[0];
    return t;
  }

  private static ApiException fromGrpc(StatusRuntimeException e) {
    byte[] status = e.getTrailers() == null ? null : e.getTrailers().get(ApiServerService.STATUS_KEY);
    if (status != null) {
      try {
        io.capstan.api.meta.v1.Status s = io.capstan.api.meta.v1.Status.parseFrom(status);
        return new ApiException(s.getCode(), s.getReason(), s.getMessage(), s.getDetails());
      } catch (InvalidProtocolBufferException ignored) {
        // fall through
      }
    }
    return ApiException.of(500, "InternalError", e.getStatus().toString());
  }

  private static byte[] body(HttpCall ex) throws IOException {
    String type = String.valueOf(ex.header("Content-Type"));
    if (type.contains("protobuf")) {
      // Kubernetes' protobuf encoding (its own field numbers, "k8s\0" envelope) is not ours.
      throw ApiException.of(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
          + "media types include: application/json, application/yaml, application/merge-patch+json, application/strategic-merge-patch+json "
          + "(Kubernetes' protobuf encoding is not supported)");
    }
    return ex.body();
  }

  private static long parseLong(String s) {
    try {
      return Long.parseLong(s);
    } catch (NumberFormatException e) {
      throw ApiException.badRequest("invalid number \"" + s + "\"");
    }
  }

  private static Map<String, String> query(String raw) {
    Map<String, String> out = new HashMap<>();
    if (raw == null) {
      return out;
    }
    for (String kv : raw.split("&")) {
      int eq = kv.indexOf('=');
      String k = URLDecoder.decode(eq < 0 ? kv : kv.substring(0, eq), StandardCharsets.UTF_8);
      String v = eq < 0 ? "" : URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8);
      out.put(k, v);
    }
    return out;
  }

  /**
   * The request body as a tree: YAML when the client says {@code Content-Type: application/yaml}
   * (as Kubernetes accepts), JSON otherwise. Malformed input is a 400 naming the format.
   */
  private static JsonNode document(HttpCall ex) throws IOException {
    byte[] b = body(ex);
    boolean yaml = String.valueOf(ex.header("Content-Type")).startsWith("application/yaml");
    try {
      JsonNode node = (yaml ? YAML : KubeJson.JSON).readTree(b);
      if (node == null || node.isMissingNode()) {
        throw ApiException.badRequest("the request body is empty");
      }
      return node;
    } catch (com.fasterxml.jackson.core.JacksonException e) {
      throw ApiException.badRequest("the request body is not valid " + (yaml ? "YAML" : "JSON") + ": " + e.getOriginalMessage());
    }
  }

  /** Sends JSON, or YAML to a client whose Accept header asks for it first. */
  private static void send(HttpCall ex, int code, JsonNode body) throws IOException {
    String accept = ex.header("Accept");
    if (accept != null && accept.trim().startsWith("application/yaml")) {
      ex.respond(code, "application/yaml", YAML.writeValueAsBytes(body));
    } else {
      ex.respond(code, "application/json", KubeJson.JSON.writeValueAsBytes(body));
    }
  }
}
