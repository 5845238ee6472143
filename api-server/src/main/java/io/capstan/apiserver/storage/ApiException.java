package io.capstan.apiserver.storage;

import io.capstan.api.meta.v1.Status;
import io.capstan.api.meta.v1.StatusDetails;

/**
 * A refusal with Kubernetes' meaning: an HTTP code, a reason (NotFound, AlreadyExists, Conflict,
 * Invalid, Expired, ...) and a message, carried as a {@code Status} object. The REST layer sends
 * the Status as the body; the gRPC layer maps the code to a gRPC status.
 */
public final class ApiException extends RuntimeException {
  private final Status status;

  public ApiException(int code, String reason, String message, StatusDetails details) {
    super(message);
    this.status = Status.newBuilder().setApiVersion("v1").setKind("Status").setStatus("Failure")
        .setCode(code).setReason(reason).setMessage(message).setDetails(details).build();
  }

  public Status status() {
    return status;
  }

  public int code() {
    return status.getCode();
  }

  public String reason() {
    return status.getReason();
  }

  private static StatusDetails details(String resource, String name) {
    return StatusDetails.newBuilder().setKind(resource).setName(name).build();
  }

  public static ApiException notFound(String resource, String name) {
    return new ApiException(404, "NotFound", resource + " \"" + name + "\" not found", details(resource, name));
  }

  public static ApiException alreadyExists(String resource, String name) {
    return new ApiException(409, "AlreadyExists", resource + " \"" + name + "\" already exists", details(resource, name));
  }

  public static ApiException conflict(String resource, String name) {
    return new ApiException(409, "Conflict", "Operation cannot be fulfilled on " + resource + " \"" + name
        + "\": the object has been modified; please apply your changes to the latest version and try again",
        details(resource, name));
  }

  /** An error without details about one object. */
  public static ApiException of(int code, String reason, String message) {
    return new ApiException(code, reason, message, StatusDetails.getDefaultInstance());
  }

  /** A path that names no resource (Kubernetes' words for it). */
  public static ApiException noSuchPath() {
    return of(404, "NotFound", "the server could not find the requested resource");
  }

  public static ApiException expired(String message) {
    return new ApiException(410, "Expired", message, StatusDetails.getDefaultInstance());
  }

  public static ApiException badRequest(String message) {
    return new ApiException(400, "BadRequest", message, StatusDetails.getDefaultInstance());
  }

  public static ApiException unavailable(String message) {
    return new ApiException(503, "ServiceUnavailable", message, StatusDetails.getDefaultInstance());
  }
}
