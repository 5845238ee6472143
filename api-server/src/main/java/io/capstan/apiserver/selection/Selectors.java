package io.capstan.apiserver.selection;

import com.google.protobuf.Message;
import io.capstan.api.core.v1.Pod;
import io.capstan.api.meta.v1.ObjectMeta;
import io.capstan.apiserver.storage.ApiException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * Kubernetes' label selectors ({@code app=web,tier!=db,env in (a,b),!legacy,release}) and field
 * selectors ({@code metadata.name=x,spec.nodeName!=}), parsed into predicates over objects.
 */
public final class Selectors {
  private Selectors() {}

  /** Parses a label selector; "" selects everything. Fails with 400 on bad syntax. */
  public static Predicate<Message> labels(String selector) {
    List<Predicate<Map<String, String>>> terms = new ArrayList<>();
    for (String term : splitTerms(selector)) {
      terms.add(labelTerm(term.trim()));
    }
    return m -> {
      Map<String, String> labels = meta(m).getLabelsMap();
      for (Predicate<Map<String, String>> t : terms) {
        if (!t.test(labels)) {
          return false;
        }
      }
      return true;
    };
  }

  private static List<String> splitTerms(String selector) {
    List<String> out = new ArrayList<>();
    int depth = 0;
    StringBuilder cur = new StringBuilder();
    for (char c : selector.toCharArray()) {
      if (c == '(') {
        depth++;
      } else if (c == ')') {
        depth--;
      }
      if (c == ',' && depth == 0) {
        out.add(cur.toString());
        cur.setLength(0);
      } else {
        cur.append(c);
      }
    }
    if (!cur.toString().isBlank()) {
      out.add(cur.toString());
    }
    return out;
  }

  private static Predicate<Map<String, String>> labelTerm(String t) {
    if (t.isEmpty()) {
      throw ApiException.badRequest("unable to parse requirement: empty term in label selector");
    }
    String lower = t.replaceAll("\\s+", " ");
    int in = lower.indexOf(" in ");
    int notin = lower.indexOf(" notin ");
    if (notin > 0 || in > 0) {
      boolean negate = notin > 0;
      String key = lower.substring(0, negate ? notin : in).trim();
      String rest = lower.substring((negate ? notin + 7 : in + 4)).trim();
      if (!rest.startsWith("(") || !rest.endsWith(")")) {
        throw ApiException.badRequest("unable to parse requirement: values of '" + key + "' must be in parentheses");
      }
      Set<String> values = new HashSet<>();
      for (String v : rest.substring(1, rest.length() - 1).split(",")) {
        values.add(v.trim());
      }
      return negate ? l -> !values.contains(l.get(key)) : l -> values.contains(l.get(key));
    }
    if (t.startsWith("!")) {
      String key = t.substring(1).trim();
      return l -> !l.containsKey(key);
    }
    int ne = t.indexOf("!=");
    if (ne > 0) {
      String key = t.substring(0, ne).trim();
      String value = t.substring(ne + 2).trim();
      return l -> !value.equals(l.get(key));
    }
    int eq = t.indexOf('=');
    if (eq > 0) {
      String key = t.substring(0, eq).trim();
      String value = t.substring(t.startsWith("==", eq) ? eq + 2 : eq + 1).trim();
      return l -> value.equals(l.get(key));
    }
    if (t.matches("[A-Za-z0-9./_-]+")) {
      return l -> l.containsKey(t);
    }
    throw ApiException.badRequest("unable to parse requirement: invalid label selector term '" + t + "'");
  }

  /**
   * Parses a field selector over metadata.name, metadata.namespace, spec.nodeName (pods) and
   * status.phase (pods); "" selects everything. Unknown fields fail with 400, as Kubernetes'.
   */
  public static Predicate<Message> fields(String selector, String kind) {
    Predicate<Message> all = m -> true;
    for (String term : splitTerms(selector)) {
      String t = term.trim();
      boolean negate = t.contains("!=");
      int at = negate ? t.indexOf("!=") : t.indexOf('=');
      if (at <= 0) {
        throw ApiException.badRequest("invalid field selector term '" + t + "'");
      }
      String field = t.substring(0, at).trim();
      String value = t.substring(at + (negate ? 2 : (t.startsWith("==", at) ? 2 : 1))).trim();
      java.util.function.Function<Message, String> getter = switch (field) {
        case "metadata.name" -> m -> meta(m).getName();
        case "metadata.namespace" -> m -> meta(m).getNamespace();
        case "spec.nodeName" -> kind.equals("Pod") ? m -> ((Pod) m).getSpec().getNodeName() : null;
        case "status.phase" -> kind.equals("Pod") ? m -> ((Pod) m).getStatus().getPhase() : null;
        default -> null;
      };
      if (getter == null) {
        throw ApiException.badRequest("field label not supported: " + field);
      }
      Predicate<Message> p = m -> value.equals(getter.apply(m));
      all = all.and(negate ? p.negate() : p);
    }
    return all;
  }

  private static ObjectMeta meta(Message m) {
    return io.capstan.apiserver.storage.StoredObjects.meta(m);
  }
}
