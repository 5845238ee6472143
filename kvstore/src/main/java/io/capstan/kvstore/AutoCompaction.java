package io.capstan.kvstore;

import io.capstan.common.GoDurations;
import java.time.Duration;

/**
 * What history the leader compacts away on its own: etcd's {@code --auto-compaction-mode} and
 * {@code --auto-compaction-retention}, with etcd 3.4's schedule (see {@link AutoCompactor}).
 *
 * @param mode {@code PERIODIC}: keep {@code period} of history; {@code REVISION}: keep the last
 *     {@code revisions} revisions
 * @param period history kept in periodic mode, zero when off
 * @param revisions revisions kept in revision mode, zero when off
 * @param checkInterval how often the compactor looks: a tenth of {@link #compactInterval} in
 *     periodic mode, 5 minutes in revision mode (etcd's; tests shorten it)
 */
public record AutoCompaction(Mode mode, Duration period, long revisions, Duration checkInterval) {

  public enum Mode { PERIODIC, REVISION }

  /** Auto-compaction off, etcd's default. */
  public static final AutoCompaction OFF = new AutoCompaction(Mode.PERIODIC, Duration.ZERO, 0, Duration.ZERO);

  /** How often etcd's revision-mode compactor looks. */
  public static final Duration REVISION_CHECK_INTERVAL = Duration.ofMinutes(5);

  private static final Duration HOUR = Duration.ofHours(1);

  public AutoCompaction {
    if (period.isNegative() || revisions < 0) {
      throw new IllegalArgumentException("--auto-compaction-retention must not be negative");
    }
    if ((mode == Mode.PERIODIC ? !period.isZero() : revisions > 0) && checkInterval.toMillis() < 1) {
      throw new IllegalArgumentException("--auto-compaction-retention " + GoDurations.format(period)
          + " is too short: periodic retention must be at least 10ms");
    }
  }

  /** Keeps {@code keep} of history: compacts every {@code min(keep, 1h)} to the revision of {@code keep} ago. */
  public static AutoCompaction periodic(Duration keep) {
    Duration every = keep.compareTo(HOUR) > 0 ? HOUR : keep;
    return new AutoCompaction(Mode.PERIODIC, keep, 0, every.dividedBy(10));
  }

  /** Keeps the last {@code keep} revisions, looking every 5 minutes. */
  public static AutoCompaction revisions(long keep) {
    return revisions(keep, REVISION_CHECK_INTERVAL);
  }

  /** Keeps the last {@code keep} revisions, looking every {@code checkInterval}. */
  public static AutoCompaction revisions(long keep, Duration checkInterval) {
    return new AutoCompaction(Mode.REVISION, Duration.ZERO, keep, checkInterval);
  }

  /**
   * Reads the two flags as etcd does: mode {@code periodic} or {@code revision}; retention
   * {@code 0} for off; in periodic mode a duration ({@code 30m}, {@code 72h}) or a bare number of
   * hours, in revision mode a number of revisions. Unlike etcd, a duration in revision mode is
   * refused (etcd reads {@code 5m} there as 300,000,000,000 revisions).
   *
   * @throws IllegalArgumentException with a message naming the flag
   */
  public static AutoCompaction parse(String mode, String retention) {
    String r = retention.trim();
    switch (mode) {
      case "periodic" -> {
        if (r.matches("\\d+")) {
          long hours = Long.parseLong(r);
          return hours == 0 ? OFF : periodic(Duration.ofHours(hours));
        }
        Duration keep = GoDurations.parseFlag("--auto-compaction-retention", r);
        return keep.isZero() ? OFF : periodic(keep);
      }
      case "revision" -> {
        if (!r.matches("\\d+")) {
          throw new IllegalArgumentException("--auto-compaction-retention '" + retention
              + "' is not a number of revisions (--auto-compaction-mode is 'revision')");
        }
        long keep = Long.parseLong(r);
        return keep == 0 ? OFF : revisions(keep);
      }
      default -> throw new IllegalArgumentException("--auto-compaction-mode must be 'periodic' or 'revision', not '" + mode + "'");
    }
  }

  public boolean enabled() {
    return mode == Mode.PERIODIC ? !period.isZero() : revisions > 0;
  }

  /** Periodic mode: the time between compactions once the first is done, {@code min(period, 1h)}. */
  public Duration compactInterval() {
    return period.compareTo(HOUR) > 0 ? HOUR : period;
  }

  @Override
  public String toString() {
    if (!enabled()) {
      return "off";
    }
    return mode == Mode.PERIODIC ? "periodic, keeping " + GoDurations.format(period)
        : "revision, keeping " + revisions + " revisions";
  }
}
