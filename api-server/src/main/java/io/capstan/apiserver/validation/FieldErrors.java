package io.capstan.apiserver.validation;

import io.capstan.api.meta.v1.StatusCause;
import io.capstan.api.meta.v1.StatusDetails;
import io.capstan.apiserver.storage.ApiException;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/** Collects field errors as Kubernetes reports them: a path, a reason and a message. */
public final class FieldErrors {
  private static final Pattern DNS1123_LABEL = Pattern.compile("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  private static final Pattern DNS1123_SUBDOMAIN = Pattern.compile("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  private static final Pattern LABEL_VALUE = Pattern.compile("(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?");
  private static final Pattern LABEL_NAME = Pattern.compile("([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]");
  private static final Pattern QUANTITY = Pattern.compile("[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?");

  private final List<StatusCause> causes = new ArrayList<>();

  public FieldErrors required(String field, boolean present) {
    if (!present) {
      causes.add(cause("FieldValueRequired", field, "Required value"));
    }
    return this;
  }

  public FieldErrors invalid(String field, String value, String detail) {
    causes.add(cause("FieldValueInvalid", field, "Invalid value: \"" + value + "\": " + detail));
    return this;
  }

  public FieldErrors forbidden(String field, String detail) {
    causes.add(cause("FieldValueForbidden", field, "Forbidden: " + detail));
    return this;
  }

  public FieldErrors immutable(String field, String value) {
    return invalid(field, value, "field is immutable");
  }

  public FieldErrors notSupported(String field, String value, List<String> allowed) {
    causes.add(cause("FieldValueNotSupported", field, "Unsupported value: \"" + value + "\": supported values: \""
        + String.join("\", \"", allowed) + "\""));
    return this;
  }

  public FieldErrors dns1123Label(String field, String value) {
    if (value.length() > 63 || !DNS1123_LABEL.matcher(value).matches()) {
      invalid(field, value, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
          + "and must start and end with an alphanumeric character (max 63 characters)");
    }
    return this;
  }

  public FieldErrors dns1123Subdomain(String field, String value) {
    if (value.length() > 253 || !DNS1123_SUBDOMAIN.matcher(value).matches()) {
      invalid(field, value, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
          + "and must start and end with an alphanumeric character (max 253 characters)");
    }
    return this;
  }

  public FieldErrors labels(String field, java.util.Map<String, String> labels) {
    labels.forEach((k, v) -> {
      String name = k.contains("/") ? k.substring(k.indexOf('/') + 1) : k;
      String prefix = k.contains("/") ? k.substring(0, k.indexOf('/')) : "";
      if (name.length() > 63 || !LABEL_NAME.matcher(name).matches()
          || (!prefix.isEmpty() && (prefix.length() > 253 || !DNS1123_SUBDOMAIN.matcher(prefix).matches()))) {
        invalid(field, k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            + "with an alphanumeric character (max 63 characters), with an optional DNS subdomain prefix and '/'");
      }
      if (v.length() > 63 || !LABEL_VALUE.matcher(v).matches()) {
        invalid(field + "[" + k + "]", v, "a valid label must be an empty string or consist of alphanumeric characters, "
            + "'-', '_' or '.', and must start and end with an alphanumeric character (max 63 characters)");
      }
    });
    return this;
  }

  public FieldErrors quantities(String field, java.util.Map<String, String> values) {
    values.forEach((k, v) -> {
      if (!QUANTITY.matcher(v).matches()) {
        invalid(field + "[" + k + "]", v, "quantities must match the regular expression "
            + "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
      }
    });
    return this;
  }

  private static StatusCause cause(String reason, String field, String message) {
    return StatusCause.newBuilder().setReason(reason).setField(field).setMessage(message).build();
  }

  /** Throws 422 Invalid naming every cause, if there is any. */
  public void throwIfAny(String kind, String name) {
    if (causes.isEmpty()) {
      return;
    }
    StringBuilder msg = new StringBuilder(kind).append(" \"").append(name).append("\" is invalid: ");
    if (causes.size() == 1) {
      msg.append(causes.get(0).getField()).append(": ").append(causes.get(0).getMessage());
    } else {
      msg.append('[');
      for (int i = 0; i < causes.size(); i++) {
        msg.append(i > 0 ? ", " : "").append(causes.get(i).getField()).append(": ").append(causes.get(i).getMessage());
      }
      msg.append(']');
    }
    throw new ApiException(422, "Invalid", msg.toString(),
        StatusDetails.newBuilder().setName(name).setKind(kind).addAllCauses(causes).build());
  }
}
