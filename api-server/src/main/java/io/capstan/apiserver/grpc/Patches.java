package io.capstan.apiserver.grpc;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import io.capstan.apiserver.rest.KubeJson;
import io.capstan.apiserver.storage.ApiException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The three patch kinds Kubernetes accepts, applied to an object's Kubernetes JSON form (the
 * form clients see, so IntOrString and int64 fields patch as they print):
 *
 * <ul>
 *   <li>JSON merge patch (RFC 7386): objects merge, null deletes, everything else replaces;
 *   <li>strategic merge patch, what {@code kubectl apply} and {@code kubectl patch} send for
 *       built-in kinds: as a merge patch, except that lists with a merge key (containers by
 *       {@code name}, container ports by {@code containerPort}, conditions by {@code type}, ...)
 *       merge element by element, finalizers merge as a set, and the directives {@code $patch}
 *       (replace, delete, merge), {@code $setElementOrder/<list>},
 *       {@code $deleteFromPrimitiveList/<list>} and {@code $retainKeys} are honoured;
 *   <li>JSON patch (RFC 6902): add, remove, replace, move, copy and test operations.
 * </ul>
 */
public final class Patches {
  public static final String MERGE = "application/merge-patch+json";
  public static final String STRATEGIC = "application/strategic-merge-patch+json";
  public static final String JSON_PATCH = "application/json-patch+json";

  /**
   * Merge keys of Kubernetes' lists, by message type and field JSON name, as its Go types declare
   * them ({@code patchStrategy:"merge" patchMergeKey:"..."}). Lists not named here are replaced.
   */
  private static final Map<String, String> MERGE_KEYS = Map.ofEntries(
      Map.entry("PodSpec.containers", "name"),
      Map.entry("PodSpec.initContainers", "name"),
      Map.entry("PodSpec.volumes", "name"),
      Map.entry("PodSpec.imagePullSecrets", "name"),
      Map.entry("Container.env", "name"),
      Map.entry("Container.ports", "containerPort"),
      Map.entry("Container.volumeMounts", "mountPath"),
      Map.entry("ServiceSpec.ports", "port"),
      Map.entry("PodStatus.conditions", "type"),
      Map.entry("NodeStatus.conditions", "type"),
      Map.entry("NodeStatus.addresses", "type"),
      Map.entry("DeploymentStatus.conditions", "type"),
      Map.entry("ReplicaSetStatus.conditions", "type"),
      Map.entry("ObjectMeta.ownerReferences", "uid"));
  /** Lists of strings that merge as sets. */
  private static final java.util.Set<String> SET_LISTS = java.util.Set.of("ObjectMeta.finalizers");

  private Patches() {}

  /** Applies {@code patch} of {@code type} (one of the constants; empty means merge) to {@code target}. */
  public static Message apply(Message target, String patch, String type) {
    JsonNode patched = patch(KubeJson.toJson(target), patch, type, target.getDescriptorForType());
    try {
      return KubeJson.fromJson(patched, target);
    } catch (ApiException e) {
      throw ApiException.of(422, "Invalid", "the patched object is invalid: " + e.getMessage());
    }
  }

  /**
   * Applies a patch to a JSON document that has no message type (a Scale): a strategic merge
   * patch then merges like a merge patch, as there are no lists to merge by key.
   */
  public static JsonNode applyToJson(ObjectNode doc, String patch, String type) {
    return patch(doc, patch, type, null);
  }

  /** @param type the document's message type; null for one without (strategic then means merge) */
  private static JsonNode patch(ObjectNode doc, String patch, String patchType, Descriptor type) {
    JsonNode patchNode = read(patch);
    return switch (patchType.isEmpty() ? MERGE : patchType) {
      case MERGE -> merge(doc, requireObject(patchNode, "a merge patch"));
      case STRATEGIC -> type == null
          ? merge(doc, stripDirectives(requireObject(patchNode, "a strategic merge patch")))
          : strategic(doc, requireObject(patchNode, "a strategic merge patch"), type);
      case JSON_PATCH -> jsonPatch(doc, patchNode);
      default -> throw ApiException.of(415, "UnsupportedMediaType", "unsupported patch type " + patchType
          + "; supported: " + MERGE + ", " + STRATEGIC + ", " + JSON_PATCH);
    };
  }

  private static JsonNode read(String patch) {
    try {
      JsonNode n = KubeJson.JSON.readTree(patch);
      if (n == null || n.isMissingNode()) {
        throw ApiException.badRequest("the patch is empty");
      }
      return n;
    } catch (IOException e) {
      throw ApiException.badRequest("the patch is not valid JSON: " + e.getMessage());
    }
  }

  private static ObjectNode requireObject(JsonNode n, String what) {
    if (!n.isObject()) {
      throw ApiException.badRequest(what + " must be a JSON object");
    }
    return (ObjectNode) n;
  }

  // ------------------------------------------------------------------ RFC 7386

  static JsonNode merge(JsonNode target, JsonNode patch) {
    if (!patch.isObject()) {
      return patch;
    }
    ObjectNode out = target != null && target.isObject() ? ((ObjectNode) target).deepCopy() : KubeJson.JSON.createObjectNode();
    Iterator<Map.Entry<String, JsonNode>> fields = patch.fields();
    while (fields.hasNext()) {
      Map.Entry<String, JsonNode> f = fields.next();
      if (f.getValue().isNull()) {
        out.remove(f.getKey());
      } else {
        out.set(f.getKey(), merge(out.get(f.getKey()), f.getValue()));
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ strategic merge patch

  private static JsonNode strategic(JsonNode target, ObjectNode patch, Descriptor type) {
    String directive = patch.path("$patch").asText("");
    ObjectNode body = patch.deepCopy();
    body.remove("$patch");
    if (directive.equals("delete")) {
      return null;
    }
    if (directive.equals("replace")) {
      return stripDirectives(body);
    }
    if (!directive.isEmpty() && !directive.equals("merge")) {
      throw ApiException.badRequest("unknown $patch directive \"" + directive + "\"");
    }
    ObjectNode out = target != null && target.isObject() ? ((ObjectNode) target).deepCopy() : KubeJson.JSON.createObjectNode();
    JsonNode retain = body.remove("$retainKeys");
    Map<String, JsonNode> orders = new LinkedHashMap<>();
    Map<String, JsonNode> deletions = new LinkedHashMap<>();
    for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
      String name = it.next();
      if (name.startsWith("$setElementOrder/")) {
        orders.put(name.substring("$setElementOrder/".length()), body.get(name));
      } else if (name.startsWith("$deleteFromPrimitiveList/")) {
        deletions.put(name.substring("$deleteFromPrimitiveList/".length()), body.get(name));
      }
    }
    Iterator<Map.Entry<String, JsonNode>> fields = body.fields();
    while (fields.hasNext()) {
      Map.Entry<String, JsonNode> f = fields.next();
      String name = f.getKey();
      JsonNode value = f.getValue();
      if (name.startsWith("$")) {
        continue;
      }
      FieldDescriptor fd = KubeJson.field(type, name);
      if (value.isNull()) {
        out.remove(name);
      } else if (value.isObject() && fd != null && fd.getJavaType() == FieldDescriptor.JavaType.MESSAGE && !fd.isRepeated()) {
        JsonNode merged = strategic(out.get(name), (ObjectNode) value, fd.getMessageType());
        if (merged == null) {
          out.remove(name);
        } else {
          out.set(name, merged);
        }
      } else if (value.isObject() && (fd == null || fd.isMapField())) {
        out.set(name, merge(out.get(name), value)); // a map (labels, data, ...): merge semantics
      } else if (value.isArray() && fd != null) {
        out.set(name, mergeList(out.get(name), (ArrayNode) value, type.getName() + "." + name, fd));
      } else {
        out.set(name, value);
      }
    }
    for (Map.Entry<String, JsonNode> d : deletions.entrySet()) {
      JsonNode list = out.get(d.getKey());
      if (list != null && list.isArray()) {
        ArrayNode kept = KubeJson.JSON.createArrayNode();
        for (JsonNode v : list) {
          if (!contains(d.getValue(), v)) {
            kept.add(v);
          }
        }
        out.set(d.getKey(), kept);
      }
    }
    for (Map.Entry<String, JsonNode> o : orders.entrySet()) {
      String key = MERGE_KEYS.get(type.getName() + "." + o.getKey());
      JsonNode list = out.get(o.getKey());
      if (list != null && list.isArray()) {
        out.set(o.getKey(), reorder((ArrayNode) list, o.getValue(), key));
      }
    }
    if (retain != null && retain.isArray()) {
      for (Iterator<String> it = out.fieldNames(); it.hasNext(); ) {
        if (!contains(retain, KubeJson.JSON.getNodeFactory().textNode(it.next()))) {
          it.remove();
        }
      }
    }
    return out;
  }

  private static JsonNode mergeList(JsonNode target, ArrayNode patch, String path, FieldDescriptor fd) {
    String key = MERGE_KEYS.get(path);
    for (JsonNode e : patch) {
      if (e.isObject() && e.path("$patch").asText("").equals("replace")) {
        // {"$patch": "replace"} in a list: the list is the other elements, as given
        ArrayNode replaced = KubeJson.JSON.createArrayNode();
        patch.forEach(x -> {
          if (x != e) {
            replaced.add(stripDirectives(x));
          }
        });
        return replaced;
      }
    }
    if (SET_LISTS.contains(path)) {
      ArrayNode out = target != null && target.isArray() ? ((ArrayNode) target).deepCopy() : KubeJson.JSON.createArrayNode();
      for (JsonNode v : patch) {
        if (!contains(out, v)) {
          out.add(v);
        }
      }
      return out;
    }
    if (key == null || fd.getJavaType() != FieldDescriptor.JavaType.MESSAGE) {
      return stripDirectives(patch);
    }
    List<JsonNode> out = new ArrayList<>();
    if (target != null && target.isArray()) {
      target.forEach(out::add);
    }
    for (JsonNode e : patch) {
      if (!e.isObject() || !e.has(key)) {
        throw ApiException.badRequest("every element of " + path + " in a strategic merge patch needs its merge key \"" + key + "\"");
      }
      int at = -1;
      for (int i = 0; i < out.size(); i++) {
        if (out.get(i).path(key).equals(e.get(key))) {
          at = i;
          break;
        }
      }
      if (e.path("$patch").asText("").equals("delete")) {
        if (at >= 0) {
          out.remove(at);
        }
        continue;
      }
      JsonNode merged = strategic(at >= 0 ? out.get(at) : null, (ObjectNode) e, fd.getMessageType());
      if (at >= 0) {
        out.set(at, merged);
      } else {
        out.add(merged);
      }
    }
    ArrayNode a = KubeJson.JSON.createArrayNode();
    out.forEach(a::add);
    return a;
  }

  /** Orders {@code list} as {@code order} lists its elements (by merge key, or by value); others keep their place after. */
  private static ArrayNode reorder(ArrayNode list, JsonNode order, String key) {
    ArrayNode out = KubeJson.JSON.createArrayNode();
    List<JsonNode> rest = new ArrayList<>();
    list.forEach(rest::add);
    for (JsonNode o : order) {
      for (Iterator<JsonNode> it = rest.iterator(); it.hasNext(); ) {
        JsonNode e = it.next();
        boolean same = key == null ? e.equals(o) : e.path(key).equals(o.path(key));
        if (same) {
          out.add(e);
          it.remove();
          break;
        }
      }
    }
    rest.forEach(out::add);
    return out;
  }

  private static boolean contains(JsonNode array, JsonNode v) {
    for (JsonNode x : array) {
      if (x.equals(v)) {
        return true;
      }
    }
    return false;
  }

  private static JsonNode stripDirectives(JsonNode n) {
    if (n.isObject()) {
      ObjectNode o = KubeJson.JSON.createObjectNode();
      n.fields().forEachRemaining(f -> {
        if (!f.getKey().startsWith("$")) {
          o.set(f.getKey(), stripDirectives(f.getValue()));
        }
      });
      return o;
    }
    if (n.isArray()) {
      ArrayNode a = KubeJson.JSON.createArrayNode();
      n.forEach(x -> a.add(stripDirectives(x)));
      return a;
    }
    return n;
  }

  // ------------------------------------------------------------------ RFC 6902

  private static JsonNode jsonPatch(JsonNode doc, JsonNode ops) {
    if (!ops.isArray()) {
      throw ApiException.badRequest("a JSON patch must be a JSON array of operations");
    }
    JsonNode out = doc.deepCopy();
    for (JsonNode op : ops) {
      String kind = op.path("op").asText("");
      String path = op.path("path").asText(null);
      if (path == null) {
        throw ApiException.badRequest("JSON patch operation without a path: " + op);
      }
      switch (kind) {
        case "add" -> out = put(out, path, required(op, "value"), true);
        case "replace" -> {
          at(out, path);
          out = put(out, path, required(op, "value"), false);
        }
        case "remove" -> out = remove(out, path);
        case "move" -> {
          String from = op.path("from").asText("");
          JsonNode v = at(out, from);
          out = put(remove(out, from), path, v, true);
        }
        case "copy" -> out = put(out, path, at(out, op.path("from").asText("")).deepCopy(), true);
        case "test" -> {
          if (!at(out, path).equals(required(op, "value"))) {
            throw ApiException.of(422, "Invalid", "JSON patch test failed at " + path);
          }
        }
        default -> throw ApiException.badRequest("unknown JSON patch operation \"" + kind + "\"");
      }
    }
    return out;
  }

  private static JsonNode required(JsonNode op, String field) {
    if (!op.has(field)) {
      throw ApiException.badRequest("JSON patch operation " + op.path("op").asText() + " needs \"" + field + "\"");
    }
    return op.get(field);
  }

  private static List<String> pointer(String path) {
    if (path.isEmpty()) {
      return List.of();
    }
    if (!path.startsWith("/")) {
      throw ApiException.badRequest("invalid JSON pointer \"" + path + "\"");
    }
    List<String> out = new ArrayList<>();
    for (String s : path.substring(1).split("/", -1)) {
      out.add(s.replace("~1", "/").replace("~0", "~"));
    }
    return out;
  }

  private static JsonNode at(JsonNode doc, String path) {
    JsonNode n = doc;
    for (String p : pointer(path)) {
      n = n.isArray() ? n.path(index(p, n.size() - 1)) : n.path(p);
      if (n.isMissingNode()) {
        throw ApiException.of(422, "Invalid", "JSON patch path " + path + " does not exist");
      }
    }
    return n;
  }

  private static int index(String p, int max) {
    try {
      int i = Integer.parseInt(p);
      if (i < 0 || i > max) {
        throw new NumberFormatException();
      }
      return i;
    } catch (NumberFormatException e) {
      throw ApiException.of(422, "Invalid", "JSON patch index " + p + " is out of range");
    }
  }

  private static JsonNode put(JsonNode doc, String path, JsonNode value, boolean insert) {
    List<String> parts = pointer(path);
    if (parts.isEmpty()) {
      return value;
    }
    JsonNode parent = at(doc, toPointer(parts.subList(0, parts.size() - 1)));
    String last = parts.get(parts.size() - 1);
    if (parent.isObject()) {
      ((ObjectNode) parent).set(last, value);
    } else if (parent.isArray()) {
      ArrayNode a = (ArrayNode) parent;
      if (insert) {
        a.insert(last.equals("-") ? a.size() : index(last, a.size()), value);
      } else {
        a.set(index(last, a.size() - 1), value);
      }
    } else {
      throw ApiException.of(422, "Invalid", "JSON patch path " + path + " is inside a value");
    }
    return doc;
  }

  private static JsonNode remove(JsonNode doc, String path) {
    List<String> parts = pointer(path);
    at(doc, path);
    JsonNode parent = at(doc, toPointer(parts.subList(0, parts.size() - 1)));
    String last = parts.get(parts.size() - 1);
    if (parent.isObject()) {
      ((ObjectNode) parent).remove(last);
    } else {
      ((ArrayNode) parent).remove(index(last, parent.size() - 1));
    }
    return doc;
  }

  private static String toPointer(List<String> parts) {
    StringBuilder b = new StringBuilder();
    for (String p : parts) {
      b.append('/').append(p.replace("~", "~0").replace("/", "~1"));
    }
    return b.toString();
  }
}
