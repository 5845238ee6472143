package io.capstan.kvstore.mvcc;

/**
 * The events of every revision still in history, by revision. Revisions are dense: each write
 * transaction that changes something takes the next one, so the log is a ring of arrays indexed by
 * {@code revision - first}. Not thread-safe: guarded by {@link MvccStore}'s lock.
 */
final class RevisionLog {
  private Change[][] ring = new Change[1024][];
  private int head;
  private int size;
  private long first;

  RevisionLog(long firstRevision) {
    this.first = firstRevision;
  }

  /** The oldest revision held; equal to {@code last() + 1} when the log is empty. */
  long first() {
    return first;
  }

  long last() {
    return first + size - 1;
  }

  /**
   * Appends the events of {@code revision}.
   *
   * @throws IllegalStateException if the revision is not the one after {@link #last()}
   */
  void append(long revision, Change[] changes) {
    if (revision != first + size) {
      throw new IllegalStateException("revision log expects " + (first + size) + ", got " + revision);
    }
    if (size == ring.length) {
      Change[][] bigger = new Change[ring.length * 2][];
      for (int i = 0; i < size; i++) {
        bigger[i] = ring[(head + i) % ring.length];
      }
      ring = bigger;
      head = 0;
    }
    ring[(head + size) % ring.length] = changes;
    size++;
  }

  /** The events of {@code revision}, or null when it is not in the log. */
  Change[] get(long revision) {
    if (revision < first || revision > last()) {
      return null;
    }
    return ring[(int) ((head + (revision - first)) % ring.length)];
  }

  /** Forgets every revision below {@code revision}. */
  void truncateBefore(long revision) {
    while (size > 0 && first < revision) {
      ring[head] = null;
      head = (head + 1) % ring.length;
      size--;
      first++;
    }
    if (size == 0 && first < revision) {
      first = revision;
    }
  }
}
