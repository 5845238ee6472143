package io.capstan.apiserver.grpc;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import io.capstan.apiserver.storage.ApiException;
import java.io.IOException;
import java.util.Iterator;
import java.util.Map;

/** JSON merge patch (RFC 7386) applied to an object's JSON form. */
final class MergePatch {
  private static final ObjectMapper JSON = new ObjectMapper();

  private MergePatch() {}

  static Message apply(Message target, String patch) {
    JsonNode patchNode;
    try {
      patchNode = JSON.readTree(patch);
    } catch (IOException e) {
      throw ApiException.badRequest("the patch is not valid JSON: " + e.getMessage());
    }
    if (patchNode == null || !patchNode.isObject()) {
      throw ApiException.badRequest("a merge patch must be a JSON object");
    }
    try {
      JsonNode doc = JSON.readTree(JsonFormat.printer().print(target));
      JsonNode merged = merge(doc, patchNode);
      Message.Builder b = target.newBuilderForType();
      JsonFormat.parser().merge(JSON.writeValueAsString(merged), b);
      return b.build();
    } catch (InvalidProtocolBufferException e) {
      throw new ApiException(422, "Invalid", "the patched object is invalid: " + e.getMessage(),
          io.capstan.api.meta.v1.StatusDetails.getDefaultInstance());
    } catch (IOException e) {
      throw ApiException.badRequest(e.getMessage());
    }
  }

  static JsonNode merge(JsonNode target, JsonNode patch) {
    if (!patch.isObject()) {
      return patch;
    }
    ObjectNode out = target != null && target.isObject() ? ((ObjectNode) target).deepCopy() : JSON.createObjectNode();
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
}
