package io.capstan.apiserver.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.Message;
import io.capstan.apiserver.registry.ResourceType;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;

/**
 * Server-side printing: {@code meta.k8s.io/v1} Tables, what {@code kubectl get} asks for
 * ({@code Accept: application/json;as=Table;v=v1;g=meta.k8s.io}), with the columns kubectl
 * users know per kind (READY, STATUS, RESTARTS for pods; UP-TO-DATE, AVAILABLE for deployments;
 * ...). Columns of priority 1 show with {@code -o wide}. Each row carries the object's metadata
 * as a PartialObjectMetadata, or the whole object with {@code includeObject=Object}.
 */
final class Tables {
  private Tables() {}

  private record Column(String name, String type, String format, int priority, String description) {}

  private record Printer(List<Column> columns, java.util.function.Function<JsonNode, List<Object>> cells) {}

  /** Whether the Accept header asks for a Table first. */
  static boolean wanted(String accept) {
    if (accept == null) {
      return false;
    }
    String first = accept.split(",")[0];
    return first.contains("as=Table") && first.contains("g=meta.k8s.io") && first.contains("v=v1") && !first.contains("v=v1beta1");
  }

  static ObjectNode table(ResourceType t, List<Message> objects, String resourceVersion, String continueToken, String includeObject,
      Instant now) {
    Printer p = printer(t.kind(), now);
    ObjectNode out = KubeJson.JSON.createObjectNode().put("kind", "Table").put("apiVersion", "meta.k8s.io/v1");
    ObjectNode meta = out.putObject("metadata");
    if (resourceVersion != null && !resourceVersion.isEmpty()) {
      meta.put("resourceVersion", resourceVersion);
    }
    if (continueToken != null && !continueToken.isEmpty()) {
      meta.put("continue", continueToken);
    }
    ArrayNode cols = out.putArray("columnDefinitions");
    for (Column c : p.columns()) {
      cols.addObject().put("name", c.name()).put("type", c.type()).put("format", c.format())
          .put("description", c.description()).put("priority", c.priority());
    }
    ArrayNode rows = out.putArray("rows");
    for (Message m : objects) {
      ObjectNode json = KubeJson.toJson(m);
      ObjectNode row = rows.addObject();
      ArrayNode cells = row.putArray("cells");
      for (Object cell : p.cells().apply(json)) {
        if (cell instanceof Integer i) {
          cells.add(i);
        } else if (cell instanceof Long l) {
          cells.add(l);
        } else {
          cells.add(String.valueOf(cell));
        }
      }
      if ("Object".equals(includeObject)) {
        row.set("object", json);
      } else if (!"None".equals(includeObject)) {
        ObjectNode partial = row.putObject("object").put("kind", "PartialObjectMetadata").put("apiVersion", "meta.k8s.io/v1");
        partial.set("metadata", json.path("metadata").deepCopy());
      }
    }
    return out;
  }

  private static Column col(String name, String type, int priority, String description) {
    return new Column(name, type, name.equals("Name") ? "name" : "", priority, description);
  }

  private static Printer printer(String kind, Instant now) {
    Column name = col("Name", "string", 0, "Name must be unique within a namespace.");
    Column age = col("Age", "string", 0, "Time since the object was created.");
    return switch (kind) {
      case "Pod" -> new Printer(List.of(name, col("Ready", "string", 0, "Ready containers / all containers."),
          col("Status", "string", 0, "The pod's phase, or why it is not running."),
          col("Restarts", "string", 0, "Container restarts."), age,
          col("IP", "string", 1, "The pod's IP address."), col("Node", "string", 1, "The node the pod is bound to.")), o -> {
            JsonNode statuses = o.path("status").path("containerStatuses");
            int ready = 0;
            int restarts = 0;
            for (JsonNode s : statuses) {
              ready += s.path("ready").asBoolean() ? 1 : 0;
              restarts += s.path("restartCount").asInt(0);
            }
            int total = o.path("spec").path("containers").size();
            String status = o.path("metadata").has("deletionTimestamp") ? "Terminating" : podStatus(o);
            return List.of(nameOf(o), ready + "/" + total, status, Integer.toString(restarts), age(o, now),
                or(o.path("status").path("podIP").asText(""), "<none>"), or(o.path("spec").path("nodeName").asText(""), "<none>"));
          });
      case "Deployment" -> new Printer(List.of(name, col("Ready", "string", 0, "Ready replicas / desired replicas."),
          col("Up-to-date", "integer", 0, "Replicas of the newest template."), col("Available", "integer", 0, "Available replicas."), age,
          col("Containers", "string", 1, "Container names."), col("Images", "string", 1, "Container images."),
          col("Selector", "string", 1, "The label selector of the pods.")), o -> List.of(nameOf(o),
          o.path("status").path("readyReplicas").asInt(0) + "/" + o.path("spec").path("replicas").asInt(0),
          o.path("status").path("updatedReplicas").asInt(0), o.path("status").path("availableReplicas").asInt(0), age(o, now),
          joined(o.path("spec").path("template").path("spec").path("containers"), "name"),
          joined(o.path("spec").path("template").path("spec").path("containers"), "image"),
          selector(o.path("spec").path("selector").path("matchLabels"))));
      case "ReplicaSet" -> new Printer(List.of(name, col("Desired", "integer", 0, "Desired replicas."),
          col("Current", "integer", 0, "Current replicas."), col("Ready", "integer", 0, "Ready replicas."), age), o -> List.of(nameOf(o),
          o.path("spec").path("replicas").asInt(0), o.path("status").path("replicas").asInt(0),
          o.path("status").path("readyReplicas").asInt(0), age(o, now)));
      case "Node" -> new Printer(List.of(name, col("Status", "string", 0, "Ready or NotReady, and whether pods may be scheduled."),
          col("Roles", "string", 0, "The node's roles."), age,
          col("Internal-IP", "string", 1, "The node's internal address.")), o -> {
            String ready = "Unknown";
            for (JsonNode c : o.path("status").path("conditions")) {
              if (c.path("type").asText().equals("Ready")) {
                ready = c.path("status").asText().equals("True") ? "Ready" : "NotReady";
              }
            }
            if (o.path("spec").path("unschedulable").asBoolean()) {
              ready += ",SchedulingDisabled";
            }
            String ip = "<none>";
            for (JsonNode a : o.path("status").path("addresses")) {
              if (a.path("type").asText().equals("InternalIP")) {
                ip = a.path("address").asText();
              }
            }
            return List.of(nameOf(o), ready, "<none>", age(o, now), ip);
          });
      case "Service" -> new Printer(List.of(name, col("Type", "string", 0, "ClusterIP or NodePort."),
          col("Cluster-IP", "string", 0, "The service's virtual IP."), col("External-IP", "string", 0, "External addresses."),
          col("Port(s)", "string", 0, "The service's ports."), age,
          col("Selector", "string", 1, "The label selector of the backing pods.")), o -> {
            List<String> ports = new ArrayList<>();
            for (JsonNode p : o.path("spec").path("ports")) {
              ports.add(p.path("port").asInt() + (p.path("nodePort").asInt(0) > 0 ? ":" + p.path("nodePort").asInt() : "")
                  + "/" + p.path("protocol").asText("TCP"));
            }
            return List.of(nameOf(o), o.path("spec").path("type").asText("ClusterIP"), or(o.path("spec").path("clusterIP").asText(""), "<none>"),
                "<none>", ports.isEmpty() ? "<none>" : String.join(",", ports), age(o, now), selector(o.path("spec").path("selector")));
          });
      case "Namespace" -> new Printer(List.of(name, col("Status", "string", 0, "Active or Terminating."), age),
          o -> List.of(nameOf(o), o.path("status").path("phase").asText("Active"), age(o, now)));
      case "ConfigMap" -> new Printer(List.of(name, col("Data", "integer", 0, "Number of entries."), age),
          o -> List.of(nameOf(o), o.path("data").size() + o.path("binaryData").size(), age(o, now)));
      case "Endpoints" -> new Printer(List.of(name, col("Endpoints", "string", 0, "Ready addresses and ports."), age), o -> {
        List<String> eps = new ArrayList<>();
        for (JsonNode s : o.path("subsets")) {
          for (JsonNode a : s.path("addresses")) {
            for (JsonNode p : s.path("ports")) {
              eps.add(a.path("ip").asText() + ":" + p.path("port").asInt());
            }
          }
        }
        return List.of(nameOf(o), eps.isEmpty() ? "<none>" : String.join(",", eps), age(o, now));
      });
      case "Lease" -> new Printer(List.of(name, col("Holder", "string", 0, "The lease's holder."), age),
          o -> List.of(nameOf(o), o.path("spec").path("holderIdentity").asText(""), age(o, now)));
      case "Event" -> new Printer(List.of(col("Last Seen", "string", 0, "Time since the event last happened."),
          col("Type", "string", 0, "Normal or Warning."), col("Reason", "string", 0, "Why the event happened."),
          col("Object", "string", 0, "The object the event is about."), col("Message", "string", 0, "What happened.")), o -> List.of(
          since(o.path("lastTimestamp").asText(o.path("metadata").path("creationTimestamp").asText("")), now),
          o.path("type").asText("Normal"), o.path("reason").asText(""),
          o.path("involvedObject").path("kind").asText("").toLowerCase(java.util.Locale.ROOT) + "/" + o.path("involvedObject").path("name").asText(""),
          o.path("message").asText("")));
      default -> new Printer(List.of(name, age), o -> List.of(nameOf(o), age(o, now)));
    };
  }

  private static String podStatus(JsonNode o) {
    for (JsonNode s : o.path("status").path("containerStatuses")) {
      String waiting = s.path("state").path("waiting").path("reason").asText("");
      if (!waiting.isEmpty()) {
        return waiting;
      }
      String terminated = s.path("state").path("terminated").path("reason").asText("");
      if (!terminated.isEmpty() && !o.path("status").path("phase").asText("").equals("Succeeded")) {
        return terminated;
      }
    }
    return o.path("status").path("phase").asText("Pending");
  }

  private static String nameOf(JsonNode o) {
    return o.path("metadata").path("name").asText();
  }

  private static String or(String v, String dflt) {
    return v.isEmpty() ? dflt : v;
  }

  private static String joined(JsonNode list, String field) {
    List<String> out = new ArrayList<>();
    list.forEach(e -> out.add(e.path(field).asText()));
    return String.join(",", out);
  }

  private static String selector(JsonNode labels) {
    List<String> out = new ArrayList<>();
    labels.fields().forEachRemaining(e -> out.add(e.getKey() + "=" + e.getValue().asText()));
    return out.isEmpty() ? "<none>" : String.join(",", out);
  }

  private static String age(JsonNode o, Instant now) {
    return since(o.path("metadata").path("creationTimestamp").asText(""), now);
  }

  private static String since(String timestamp, Instant now) {
    if (timestamp.isEmpty()) {
      return "<unknown>";
    }
    try {
      return humanDuration(Duration.between(Instant.parse(timestamp), now));
    } catch (DateTimeParseException e) {
      return "<invalid>";
    }
  }

  /** A duration as kubectl prints ages: "45s", "3m12s", "15m", "5h10m", "2d3h", "90d", "2y10d". */
  static String humanDuration(Duration d) {
    long s = d.getSeconds();
    if (s < -1) {
      return "<invalid>";
    }
    if (s < 0) {
      return "0s";
    }
    if (s < 120) {
      return s + "s";
    }
    long m = s / 60;
    if (m < 10) {
      return s % 60 == 0 ? m + "m" : m + "m" + (s % 60) + "s";
    }
    if (m < 180) {
      return m + "m";
    }
    long h = m / 60;
    if (h < 8) {
      return m % 60 == 0 ? h + "h" : h + "h" + (m % 60) + "m";
    }
    if (h < 48) {
      return h + "h";
    }
    if (h < 24 * 8) {
      return h % 24 == 0 ? (h / 24) + "d" : (h / 24) + "d" + (h % 24) + "h";
    }
    if (h < 24 * 365 * 2) {
      return (h / 24) + "d";
    }
    long days = h / 24;
    return days % 365 == 0 ? (days / 365) + "y" : (days / 365) + "y" + (days % 365) + "d";
  }
}
