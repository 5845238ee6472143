package io.capstan.bench;

import java.util.concurrent.locks.LockSupport;

/**
 * Waits for the next send time of a paced run. It parks rather than spins: on the 2-core
 * machines these benchmarks run on, a spinning sender took one core for the whole run from the
 * systems under test and from the threads that receive their events.
 */
final class Pacer {
  private Pacer() {}

  /** Returns once {@link System#nanoTime()} has reached {@code at} (at once if it has). */
  static void waitUntil(long at) {
    for (long wait = at - System.nanoTime(); wait > 0; wait = at - System.nanoTime()) {
      LockSupport.parkNanos(wait);
    }
  }
}
