package io.capstan.common;

import java.net.URI;
import java.util.ArrayList;
import java.util.List;

/** Parsing of the {@code http://host:port} URL lists that etcd-style flags take. */
public final class Urls {
  private Urls() {}

  /** A host and port taken from a URL. */
  public record HostPort(String host, int port) {
    @Override
    public String toString() {
      return (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
    }
  }

  /**
   * Parses a comma-separated list of {@code scheme://host:port} URLs.
   *
   * @throws IllegalArgumentException naming the URL that has no host or no port
   */
  public static List<HostPort> parseList(String commaSeparated) {
    List<HostPort> out = new ArrayList<>();
    for (String s : commaSeparated.split(",")) {
      String trimmed = s.trim();
      if (!trimmed.isEmpty()) {
        out.add(parse(trimmed));
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("no URL given in '" + commaSeparated + "'");
    }
    return out;
  }

  /** Parses one {@code scheme://host:port} URL. */
  public static HostPort parse(String url) {
    URI uri;
    try {
      uri = URI.create(url.contains("://") ? url : "http://" + url);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("malformed URL '" + url + "': " + e.getMessage(), e);
    }
    if (uri.getHost() == null || uri.getPort() < 0) {
      throw new IllegalArgumentException("URL '" + url + "' must have the form http://host:port");
    }
    String host = uri.getHost();
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    return new HostPort(host, uri.getPort());
  }
}
