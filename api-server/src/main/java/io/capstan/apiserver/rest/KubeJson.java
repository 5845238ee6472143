package io.capstan.apiserver.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.IntNode;
import com.fasterxml.jackson.databind.node.LongNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import io.capstan.api.meta.v1.IntOrString;
import io.capstan.apiserver.storage.ApiException;
import java.io.IOException;
import java.util.Iterator;
import java.util.Map;

/**
 * Objects to and from Kubernetes' JSON. Protobuf's JSON mapping gives the field names; this
 * fixes the two places where it differs from Kubernetes: 64-bit integers are numbers (not
 * strings), and IntOrString is the bare number or string.
 */
public final class KubeJson {
  public static final ObjectMapper JSON = new ObjectMapper();
  private static final JsonFormat.Printer PRINTER = JsonFormat.printer().omittingInsignificantWhitespace();
  private static final JsonFormat.Parser PARSER = JsonFormat.parser().ignoringUnknownFields();

  private KubeJson() {}

  public static ObjectNode toJson(Message m) {
    try {
      ObjectNode node = (ObjectNode) JSON.readTree(PRINTER.print(m));
      fixOut(m.getDescriptorForType(), node);
      return node;
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Parses a Kubernetes JSON object into the kind's message; 400 on malformed input. */
  public static Message fromJson(byte[] body, Message prototype) {
    JsonNode node;
    try {
      node = JSON.readTree(body);
    } catch (IOException e) {
      throw ApiException.badRequest("the request body is not valid JSON: " + e.getMessage());
    }
    return fromJson(node, prototype);
  }

  public static Message fromJson(JsonNode node, Message prototype) {
    if (node == null || !node.isObject()) {
      throw ApiException.badRequest("the request body must be a JSON object");
    }
    ObjectNode copy = ((ObjectNode) node).deepCopy();
    fixIn(prototype.getDescriptorForType(), copy);
    Message.Builder b = prototype.newBuilderForType();
    try {
      PARSER.merge(JSON.writeValueAsString(copy), b);
    } catch (InvalidProtocolBufferException e) {
      throw ApiException.badRequest("the object is not a valid " + prototype.getDescriptorForType().getName() + ": " + e.getMessage());
    } catch (IOException e) {
      throw ApiException.badRequest(e.getMessage());
    }
    return b.build();
  }

  private static boolean isIntOrString(FieldDescriptor f) {
    return f.getJavaType() == FieldDescriptor.JavaType.MESSAGE && f.getMessageType().equals(IntOrString.getDescriptor());
  }

  private static void fixOut(Descriptor d, ObjectNode node) {
    for (FieldDescriptor f : d.getFields()) {
      JsonNode v = node.get(f.getJsonName());
      if (v == null || f.isMapField()) {
        continue;
      }
      if (isIntOrString(f)) {
        node.set(f.getJsonName(), v.path("type").asInt() == 1 ? TextNode.valueOf(v.path("strVal").asText())
            : IntNode.valueOf(v.path("intVal").asInt()));
      } else if (f.getJavaType() == FieldDescriptor.JavaType.LONG && v.isTextual()) {
        node.set(f.getJsonName(), LongNode.valueOf(Long.parseLong(v.asText())));
      } else if (f.getJavaType() == FieldDescriptor.JavaType.MESSAGE) {
        if (f.isRepeated() && v.isArray()) {
          v.forEach(e -> {
            if (e.isObject()) {
              fixOut(f.getMessageType(), (ObjectNode) e);
            }
          });
        } else if (v.isObject()) {
          fixOut(f.getMessageType(), (ObjectNode) v);
        }
      }
    }
  }

  /** The field a JSON member names: by its JSON name ("podIP"), else by its proto name ("pod_ip"). */
  public static FieldDescriptor field(Descriptor d, String name) {
    for (FieldDescriptor f : d.getFields()) {
      if (f.getJsonName().equals(name)) {
        return f;
      }
    }
    return d.findFieldByName(name);
  }

  private static void fixIn(Descriptor d, ObjectNode node) {
    Iterator<Map.Entry<String, JsonNode>> it = node.fields();
    while (it.hasNext()) {
      Map.Entry<String, JsonNode> e = it.next();
      FieldDescriptor f = field(d, e.getKey());
      if (f == null || f.isMapField() || e.getValue().isNull()) {
        continue;
      }
      JsonNode v = e.getValue();
      if (isIntOrString(f) && !v.isObject()) {
        ObjectNode ios = JSON.createObjectNode();
        if (v.isNumber()) {
          ios.put("type", 0).put("intVal", v.asInt());
        } else {
          ios.put("type", 1).put("strVal", v.asText());
        }
        e.setValue(ios);
      } else if (f.getJavaType() == FieldDescriptor.JavaType.MESSAGE) {
        FieldDescriptor ff = f;
        if (f.isRepeated() && v.isArray()) {
          v.forEach(x -> {
            if (x.isObject()) {
              fixIn(ff.getMessageType(), (ObjectNode) x);
            }
          });
        } else if (v.isObject()) {
          fixIn(f.getMessageType(), (ObjectNode) v);
        }
      }
    }
  }

  /**
   * The paths of fields in {@code node} that {@code d} does not have ("spec.containers[0].imagee"),
   * for server-side field validation. Patch directives ("$patch", "$setElementOrder/...") are not
   * fields and are skipped.
   */
  public static java.util.List<String> unknownFields(JsonNode node, Descriptor d) {
    java.util.List<String> out = new java.util.ArrayList<>();
    unknownFields(node, d, "", out);
    return out;
  }

  private static void unknownFields(JsonNode node, Descriptor d, String path, java.util.List<String> out) {
    if (node == null || !node.isObject()) {
      return;
    }
    node.fields().forEachRemaining(e -> {
      String k = e.getKey();
      if (k.startsWith("$")) {
        return;
      }
      FieldDescriptor f = field(d, k);
      String at = path.isEmpty() ? k : path + "." + k;
      JsonNode v = e.getValue();
      if (f == null) {
        out.add(at);
      } else if (f.isMapField()) {
        FieldDescriptor value = f.getMessageType().findFieldByName("value");
        if (value.getJavaType() == FieldDescriptor.JavaType.MESSAGE && v.isObject()) {
          v.fields().forEachRemaining(x -> unknownFields(x.getValue(), value.getMessageType(), at + "[" + x.getKey() + "]", out));
        }
      } else if (f.getJavaType() == FieldDescriptor.JavaType.MESSAGE && !isIntOrString(f)) {
        if (f.isRepeated() && v.isArray()) {
          for (int i = 0; i < v.size(); i++) {
            unknownFields(v.get(i), f.getMessageType(), at + "[" + i + "]", out);
          }
        } else {
          unknownFields(v, f.getMessageType(), at, out);
        }
      }
    });
  }
}
