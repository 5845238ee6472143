package io.capstan.kvstore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.capstan.kvstore.mvcc.KvException;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** The compactor's schedule and choice of revision, driven by a clock in the test's hands. */
class AutoCompactorTest {
  private static final long S = 1_000_000_000L;

  /** A store whose revision grows by 10 each second of the test's clock. */
  static class Store implements AutoCompactor.Target {
    long revision = 1;
    long compacted;
    boolean leader = true;
    boolean failing;
    final List<Long> proposed = new ArrayList<>();

    @Override
    public long currentRevision() {
      return revision;
    }

    @Override
    public long compactRevision() {
      return compacted;
    }

    @Override
    public boolean isLeader() {
      return leader;
    }

    @Override
    public CompletableFuture<?> compact(long rev) {
      proposed.add(rev);
      if (failing) {
        return CompletableFuture.failedFuture(new KvException(Status.Code.UNAVAILABLE, "etcdserver: request timed out"));
      }
      if (rev <= compacted) {
        return CompletableFuture.failedFuture(KvException.compacted());
      }
      compacted = rev;
      return CompletableFuture.completedFuture(null);
    }
  }

  /** Runs the checks from second {@code from} to {@code to}, the revision at second t being 1 + 10t. */
  private static List<Long> run(AutoCompactor c, Store s, long from, long to, long stepSeconds) {
    List<Long> done = new ArrayList<>();
    for (long t = from; t <= to; t += stepSeconds) {
      s.revision = 1 + 10 * t;
      long r = c.check(t * S);
      if (r > 0) {
        done.add(r);
      }
    }
    return done;
  }

  @Test
  void periodicKeepsThePeriodOfHistoryAndCompactsEveryPeriodUnderAnHour() {
    Store s = new Store();
    AutoCompactor c = new AutoCompactor(AutoCompaction.periodic(Duration.ofSeconds(10)), s, 0);
    assertThat(run(c, s, 1, 9, 1)).as("nothing before a whole period has passed").isEmpty();
    // at 10 s, to the revision noted at 0 s; then every 10 s, to the revision of 10 s before
    assertThat(run(c, s, 10, 35, 1)).containsExactly(1L, 101L, 201L);
    assertThat(c.compactions()).isEqualTo(3);
    assertThat(s.proposed).containsExactly(1L, 101L, 201L);
  }

  @Test
  void periodicOverAnHourCompactsHourlyToTheRevisionOfThePeriodAgo() {
    Store s = new Store();
    AutoCompaction policy = AutoCompaction.periodic(Duration.ofHours(2));
    assertThat(policy.checkInterval()).isEqualTo(Duration.ofMinutes(6));
    AutoCompactor c = new AutoCompactor(policy, s, 0);
    // checks every 6 minutes for 4 hours: first at 2 h (to the revision at 0), then hourly
    assertThat(run(c, s, 360, 4 * 3600, 360)).containsExactly(1L, 1 + 10 * 3600L, 1 + 10 * 7200L);
  }

  @Test
  void onlyTheLeaderProposesButFollowersNoteRevisionsForWhenTheyLead() {
    Store s = new Store();
    s.leader = false;
    AutoCompactor c = new AutoCompactor(AutoCompaction.periodic(Duration.ofSeconds(10)), s, 0);
    assertThat(run(c, s, 1, 14, 1)).isEmpty();
    assertThat(s.proposed).isEmpty();
    s.leader = true;
    // elected at 15 s: compacts at once to what it noted 10 s before
    assertThat(run(c, s, 15, 15, 1)).containsExactly(51L);
  }

  @Test
  void aFailedProposalIsTriedAgainAtTheNextCheck() {
    Store s = new Store();
    AutoCompactor c = new AutoCompactor(AutoCompaction.periodic(Duration.ofSeconds(10)), s, 0);
    s.failing = true;
    assertThat(run(c, s, 1, 10, 1)).isEmpty();
    assertThat(c.failures()).isEqualTo(1);
    s.failing = false;
    assertThat(run(c, s, 11, 11, 1)).containsExactly(11L);
    assertThat(s.proposed).containsExactly(1L, 11L);
  }

  @Test
  void historyAlreadyCompactedFurtherIsLeftAlone() {
    Store s = new Store();
    AutoCompactor c = new AutoCompactor(AutoCompaction.periodic(Duration.ofSeconds(10)), s, 0);
    run(c, s, 1, 9, 1);
    s.compacted = 60;
    assertThat(run(c, s, 10, 19, 1)).isEmpty();
    assertThat(s.proposed).as("no proposal of a revision below the compacted one").isEmpty();
    // the period restarts from that check, as after a compaction of its own
    assertThat(run(c, s, 20, 20, 1)).containsExactly(101L);
  }

  @Test
  void aCompactionThatRacedAnotherCountsAsDone() {
    Store s = new Store() {
      @Override
      public CompletableFuture<?> compact(long rev) {
        proposed.add(rev);
        compacted = rev + 5; // a client compacted further first
        return CompletableFuture.failedFuture(KvException.compacted());
      }
    };
    AutoCompactor c = new AutoCompactor(AutoCompaction.revisions(100, Duration.ofSeconds(1)), s, 0);
    s.revision = 500;
    assertThat(c.check(S)).isEqualTo(400);
    assertThat(c.failures()).isZero();
  }

  @Test
  void revisionModeKeepsTheLastRevisionsAndSkipsWhenNothingChanged() {
    Store s = new Store();
    AutoCompactor c = new AutoCompactor(AutoCompaction.revisions(100, Duration.ofSeconds(300)), s, 0);
    s.revision = 80;
    assertThat(c.check(300 * S)).as("fewer revisions than kept").isZero();
    s.revision = 250;
    assertThat(c.check(600 * S)).isEqualTo(150);
    assertThat(c.check(900 * S)).as("no new revision").isZero();
    s.leader = false;
    s.revision = 400;
    assertThat(c.check(1200 * S)).isZero();
    s.leader = true;
    assertThat(c.check(1500 * S)).isEqualTo(300);
    assertThat(s.proposed).containsExactly(150L, 300L);
  }

  @Test
  void readsEtcdsFlags() {
    assertThat(AutoCompaction.parse("periodic", "0")).isEqualTo(AutoCompaction.OFF);
    assertThat(AutoCompaction.parse("revision", "0").enabled()).isFalse();
    AutoCompaction hour = AutoCompaction.parse("periodic", "1");
    assertThat(hour.period()).isEqualTo(Duration.ofHours(1));
    assertThat(hour.checkInterval()).isEqualTo(Duration.ofMinutes(6));
    AutoCompaction minutes = AutoCompaction.parse("periodic", "30m");
    assertThat(minutes.compactInterval()).isEqualTo(Duration.ofMinutes(30));
    assertThat(minutes.checkInterval()).isEqualTo(Duration.ofMinutes(3));
    AutoCompaction days = AutoCompaction.parse("periodic", "72h");
    assertThat(days.compactInterval()).isEqualTo(Duration.ofHours(1));
    AutoCompaction revs = AutoCompaction.parse("revision", "1000");
    assertThat(revs.revisions()).isEqualTo(1000);
    assertThat(revs.checkInterval()).isEqualTo(Duration.ofMinutes(5));
  }

  @Test
  void refusesBadFlagsWithTheFlagsName() {
    assertThatThrownBy(() -> AutoCompaction.parse("daily", "1"))
        .hasMessage("--auto-compaction-mode must be 'periodic' or 'revision', not 'daily'");
    assertThatThrownBy(() -> AutoCompaction.parse("revision", "5m"))
        .hasMessageContaining("--auto-compaction-retention '5m' is not a number of revisions");
    assertThatThrownBy(() -> AutoCompaction.parse("periodic", "soon"))
        .hasMessageContaining("--auto-compaction-retention: invalid duration 'soon'");
    assertThatThrownBy(() -> AutoCompaction.parse("periodic", "-1h"))
        .hasMessageContaining("must not be negative");
    assertThatThrownBy(() -> AutoCompaction.parse("periodic", "5ms"))
        .hasMessageContaining("at least 10ms");
  }
}
