package io.capstan.kvstore.mvcc;

import io.etcd.jetcd.api.KeyValue;

/**
 * The versions of one key still in history, oldest first. A put is a full {@link KeyValue}; a
 * deletion is a tombstone: a KeyValue holding only the key and the deleting revision as
 * {@code mod_revision} (exactly what a DELETE event carries), recognisable by {@code
 * create_revision == 0}. Not thread-safe: guarded by {@link MvccStore}'s lock.
 */
final class KeyHistory {
  private KeyValue[] versions = new KeyValue[1];
  private int size;

  static boolean isTombstone(KeyValue kv) {
    return kv.getCreateRevision() == 0;
  }

  static KeyValue tombstone(KeyValue key, long revision) {
    return KeyValue.newBuilder().setKey(key.getKey()).setModRevision(revision).build();
  }

  void add(KeyValue kv) {
    if (size == versions.length) {
      versions = java.util.Arrays.copyOf(versions, size * 2);
    }
    versions[size++] = kv;
  }

  /** The newest version, a tombstone or a put; null when the history is empty. */
  KeyValue newest() {
    return size == 0 ? null : versions[size - 1];
  }

  /** The live value at the newest revision, or null if the key is deleted. */
  KeyValue live() {
    KeyValue kv = newest();
    return kv == null || isTombstone(kv) ? null : kv;
  }

  /** The live value as of {@code revision}, or null if the key did not exist then. */
  KeyValue liveAt(long revision) {
    for (int i = size - 1; i >= 0; i--) {
      KeyValue kv = versions[i];
      if (kv.getModRevision() <= revision) {
        return isTombstone(kv) ? null : kv;
      }
    }
    return null;
  }

  int size() {
    return size;
  }

  /**
   * Drops the versions that no read at or above {@code compactRevision} can see: everything older
   * than the newest version at or below it, and that version too when it is a tombstone.
   *
   * @return the bytes of key and value released, for the store's size estimate
   */
  long compact(long compactRevision) {
    int keepFrom = -1;
    for (int i = size - 1; i >= 0; i--) {
      if (versions[i].getModRevision() <= compactRevision) {
        keepFrom = isTombstone(versions[i]) ? i + 1 : i;
        break;
      }
    }
    if (keepFrom <= 0) {
      return 0;
    }
    long released = 0;
    for (int i = 0; i < keepFrom; i++) {
      released += MvccStore.sizeOf(versions[i]);
    }
    int remaining = size - keepFrom;
    KeyValue[] kept = new KeyValue[Math.max(1, remaining)];
    System.arraycopy(versions, keepFrom, kept, 0, remaining);
    versions = kept;
    size = remaining;
    return released;
  }

  /** Calls {@code visitor} with every version, oldest first. */
  void forEach(java.util.function.Consumer<KeyValue> visitor) {
    for (int i = 0; i < size; i++) {
      visitor.accept(versions[i]);
    }
  }
}
