package io.capstan.common;

import java.math.BigDecimal;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Durations written as Go's {@code time.ParseDuration} reads them ({@code 300ms}, {@code 1.5h},
 * {@code 2h45m}), the form etcd's and Kubernetes' duration flags take.
 */
public final class GoDurations {
  private static final Pattern PART = Pattern.compile("(\\d+\\.?\\d*|\\.\\d+)(ns|us|µs|μs|ms|s|m|h)");
  private static final Map<String, Long> UNIT_NANOS = Map.of(
      "ns", 1L, "us", 1_000L, "µs", 1_000L, "μs", 1_000L, "ms", 1_000_000L,
      "s", 1_000_000_000L, "m", 60_000_000_000L, "h", 3_600_000_000_000L);

  private GoDurations() {}

  /**
   * Parses {@code text}: an optional sign, then one or more decimal numbers each with a unit
   * ({@code ns}, {@code us}, {@code ms}, {@code s}, {@code m}, {@code h}); {@code 0} alone is zero.
   *
   * @throws IllegalArgumentException naming the text when it is not such a duration
   */
  public static Duration parse(String text) {
    String s = text.trim();
    boolean negative = s.startsWith("-");
    if (negative || s.startsWith("+")) {
      s = s.substring(1);
    }
    if (s.equals("0")) {
      return Duration.ZERO;
    }
    Matcher m = PART.matcher(s);
    BigDecimal nanos = BigDecimal.ZERO;
    int at = 0;
    while (at < s.length()) {
      if (!m.find(at) || m.start() != at) {
        throw new IllegalArgumentException("invalid duration '" + text + "': want a number with a unit (ns, us, ms, s, m, h), e.g. 300ms, 1.5h or 2h45m");
      }
      nanos = nanos.add(new BigDecimal(m.group(1)).multiply(BigDecimal.valueOf(UNIT_NANOS.get(m.group(2)))));
      at = m.end();
    }
    if (at == 0) {
      throw new IllegalArgumentException("invalid duration '" + text + "': empty");
    }
    long n;
    try {
      // a fraction of a nanosecond is dropped, as Go does; a value past ~292 years is refused
      n = nanos.toBigInteger().longValueExact();
    } catch (ArithmeticException tooLarge) {
      throw new IllegalArgumentException("invalid duration '" + text + "': too large");
    }
    return Duration.ofNanos(negative ? -n : n);
  }

  /** {@link #parse} for the value of command-line flag {@code flag}, whose name the error leads with. */
  public static Duration parseFlag(String flag, String text) {
    try {
      return parse(text);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(flag + ": " + e.getMessage());
    }
  }

  /**
   * Writes {@code d} as Go's {@code Duration.String} does (what etcd logs): {@code 2s}, {@code
   * 30m0s}, {@code 72h0m0s}, {@code 1.5s}, {@code 300ms}, {@code 0s}.
   */
  public static String format(Duration d) {
    if (d.isZero()) {
      return "0s";
    }
    if (d.isNegative()) {
      return "-" + format(d.negated());
    }
    long nanos = d.toNanos();
    if (nanos < 1_000_000_000L) {
      String[] units = {"ns", "µs", "ms"};
      long scale = 1;
      int u = 0;
      while (u < 2 && nanos >= scale * 1000) {
        scale *= 1000;
        u++;
      }
      return decimal(nanos, scale) + units[u];
    }
    long hours = d.toHours();
    long minutes = d.toMinutesPart();
    String seconds = decimal(nanos % 60_000_000_000L, 1_000_000_000L) + "s";
    if (hours > 0) {
      return hours + "h" + minutes + "m" + seconds;
    }
    return minutes > 0 ? minutes + "m" + seconds : seconds;
  }

  private static String decimal(long value, long scale) {
    return new BigDecimal(value).divide(BigDecimal.valueOf(scale)).stripTrailingZeros().toPlainString();
  }
}
