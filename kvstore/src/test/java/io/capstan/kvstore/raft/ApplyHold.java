package io.capstan.kvstore.raft;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Holds a member's Ratis apply thread after the next entry it applies, until {@link #release}
 * (or 60 s): what the member commits meanwhile stays unapplied, and its clients unanswered.
 */
final class ApplyHold implements AutoCloseable {
  private final CountDownLatch released = new CountDownLatch(1);
  private final AtomicBoolean holding = new AtomicBoolean(true);

  private ApplyHold() {}

  static ApplyHold on(KvStateMachine sm) {
    ApplyHold hold = new ApplyHold();
    Runnable after = sm.afterApply();
    sm.setAfterApply(() -> {
      after.run();
      if (hold.holding.get() && Thread.currentThread().getName().contains("StateMachineUpdater")) {
        try {
          hold.released.await(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    });
    return hold;
  }

  void release() {
    holding.set(false);
    released.countDown();
  }

  @Override
  public void close() {
    release();
  }
}
