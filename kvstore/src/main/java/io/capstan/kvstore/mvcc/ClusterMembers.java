package io.capstan.kvstore.mvcc;

import io.capstan.kvstore.proto.MemberAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * The members' published attributes (name, peer and client URLs), replicated through the log as
 * etcd publishes them, so that any member can answer MemberList with every member's client URLs.
 */
public final class ClusterMembers {
  private final Map<Long, MemberAttributes> byId = new TreeMap<>(Long::compareUnsigned);

  public synchronized void update(MemberAttributes attributes) {
    byId.put(attributes.getMemberId(), attributes);
  }

  public synchronized Optional<MemberAttributes> get(long memberId) {
    return Optional.ofNullable(byId.get(memberId));
  }

  public synchronized List<MemberAttributes> all() {
    return new ArrayList<>(byId.values());
  }

  public synchronized void replaceAll(List<MemberAttributes> members) {
    byId.clear();
    members.forEach(m -> byId.put(m.getMemberId(), m));
  }
}
