package org.apache.ratis.server.impl;

import org.apache.ratis.server.RaftServer;

/**
 * Has a Ratis member's state-machine updater reload the state machine from its latest snapshot,
 * the step Ratis takes after it installed a snapshot sent by the leader ({@code
 * StateMachineUpdater.reloadStateMachine}). Capstan calls it only to redo such a reload that
 * Ratis lost ({@code io.capstan.kvstore.raft.StalledApplyRepair}).
 *
 * <p>It sits in Ratis' package because {@code ServerState}, {@code StateMachineUpdater} and
 * {@code RaftServerImpl.getState()} are package-private; Capstan runs on the class path, where a
 * package may span jars. Recheck on every Ratis upgrade.
 */
public final class StateMachineReload {
  private StateMachineReload() {}

  /**
   * Asks {@code division}'s updater to reload its (paused) state machine from the state machine's
   * latest snapshot; the caller pauses the state machine first (the updater asserts it). Only
   * the updater's flag, not {@code ServerState.reloadStateMachine}: that also tells the log that
   * the snapshot was installed, which resets the log writer's last written index to the
   * snapshot's and breaks it (its next write fails) when the log already holds later entries.
   */
  public static void reload(RaftServer.Division division) {
    ((RaftServerImpl) division).getState().getStateMachineUpdater().reloadStateMachine();
  }
}
