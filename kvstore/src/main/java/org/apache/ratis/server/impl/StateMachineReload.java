package org.apache.ratis.server.impl;

import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.protocol.TermIndex;

/**
 * Has a Ratis member's state-machine updater reload the state machine from its latest snapshot,
 * the step Ratis takes after it installed a snapshot sent by the leader ({@code
 * ServerState.reloadStateMachine}). Capstan calls it only to redo such a reload that Ratis lost
 * ({@code io.capstan.kvstore.raft.StalledApplyRepair}).
 *
 * <p>It sits in Ratis' package because {@code ServerState} and {@code RaftServerImpl.getState()}
 * are package-private; Capstan runs on the class path, where a package may span jars. Recheck on
 * every Ratis upgrade.
 */
public final class StateMachineReload {
  private StateMachineReload() {}

  /**
   * Asks {@code division}'s updater to reload its (paused) state machine, and marks {@code
   * snapshot} installed in its log. The caller pauses the state machine first: the updater asserts
   * that it is paused.
   */
  public static void reload(RaftServer.Division division, TermIndex snapshot) {
    ((RaftServerImpl) division).getState().reloadStateMachine(snapshot);
  }
}
