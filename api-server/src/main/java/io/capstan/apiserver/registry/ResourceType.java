package io.capstan.apiserver.registry;

import com.google.protobuf.Message;
import java.util.List;

/**
 * One API kind as the server knows it: where it lives in the URL space and in storage, and its
 * message type. Adding a kind is one of these in {@link Registry#builtIn()}.
 *
 * @param group API group, "" for core
 * @param resource plural lower-case name used in paths and storage keys ("pods")
 * @param namespaced whether objects live in a namespace
 * @param hasStatus whether the kind has a status subresource (status changes only through it)
 */
public record ResourceType(String group, String version, String resource, String kind, String singular,
    List<String> shortNames, boolean namespaced, boolean hasStatus, Message prototype) {

  /** Whether the kind has {@code spec.replicas}, and so a {@code /scale} subresource (an autoscaling/v1 Scale). */
  public boolean scalable() {
    var spec = prototype.getDescriptorForType().findFieldByName("spec");
    return spec != null && spec.getJavaType() == com.google.protobuf.Descriptors.FieldDescriptor.JavaType.MESSAGE
        && spec.getMessageType().findFieldByName("replicas") != null;
  }

  /** "v1" for core, else "group/version", as in an object's apiVersion. */
  public String apiVersion() {
    return group.isEmpty() ? version : group + "/" + version;
  }
}
