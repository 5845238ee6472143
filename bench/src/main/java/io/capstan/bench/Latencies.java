package io.capstan.bench;

import java.util.Arrays;

/** Recorded latencies (nanoseconds) of one run; thread-safe appends, percentiles on demand. */
final class Latencies {
  private long[] values = new long[1 << 16];
  private int size;

  synchronized void add(long nanos) {
    if (size == values.length) {
      values = Arrays.copyOf(values, size * 2);
    }
    values[size++] = nanos;
  }

  synchronized int count() {
    return size;
  }

  /** "p50=1.2ms p90=.. p99=.. max=.." over what was recorded. */
  synchronized String summary() {
    if (size == 0) {
      return "p50=- p90=- p99=- max=-";
    }
    long[] sorted = Arrays.copyOf(values, size);
    Arrays.sort(sorted);
    return "p50=" + ms(pct(sorted, 50)) + " p90=" + ms(pct(sorted, 90)) + " p99=" + ms(pct(sorted, 99))
        + " max=" + ms(sorted[sorted.length - 1]);
  }

  private static long pct(long[] sorted, double p) {
    int idx = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
    return sorted[Math.max(0, Math.min(sorted.length - 1, idx))];
  }

  static String ms(long nanos) {
    return String.format("%.2fms", nanos / 1e6);
  }
}
