package io.capstan.kvstore.raft;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Holds a member's Ratis apply thread until {@link #release} (or 60 s): after the next entry it
 * applies ({@link #on}), or before it ({@link #before}). What the member commits meanwhile stays
 * unapplied, and its clients unanswered.
 */
final class ApplyHold implements AutoCloseable {
  private final CountDownLatch released = new CountDownLatch(1);
  private final AtomicBoolean holding = new AtomicBoolean(true);

  private ApplyHold() {}

  /** Holds the apply thread after the next entry it applies (and after what runs after it). */
  static ApplyHold on(KvStateMachine sm) {
    ApplyHold hold = new ApplyHold();
    Runnable after = sm.afterApply();
    sm.setAfterApply(() -> {
      after.run();
      if (Thread.currentThread().getName().contains("StateMachineUpdater")) {
        hold.await();
      }
    });
    return hold;
  }

  /** Holds the apply thread before the next client entry it applies. */
  static ApplyHold before(KvStateMachine sm) {
    ApplyHold hold = new ApplyHold();
    sm.setBeforeApply(hold::await);
    return hold;
  }

  private void await() {
    if (!holding.get()) {
      return;
    }
    try {
      released.await(60, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
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
