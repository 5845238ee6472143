package io.capstan.common;

import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;

/** Background threads that never keep a process alive on their own. */
public final class DaemonThreads {
  private DaemonThreads() {}

  /** A scheduler on one daemon thread named {@code name}. */
  public static ScheduledExecutorService scheduler(String name) {
    return Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, name);
      t.setDaemon(true);
      return t;
    });
  }
}
