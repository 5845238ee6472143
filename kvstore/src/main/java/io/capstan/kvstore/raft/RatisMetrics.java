package io.capstan.kvstore.raft;

import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import com.codahale.metrics.Snapshot;
import com.codahale.metrics.Timer;
import java.io.OutputStream;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.ratis.metrics.MetricRegistries;
import org.apache.ratis.metrics.RatisMetricRegistry;
import org.apache.ratis.metrics.impl.RatisMetricRegistryImpl;
import org.apache.ratis.thirdparty.com.codahale.metrics.Counter;
import org.apache.ratis.thirdparty.com.codahale.metrics.Meter;
import org.apache.ratis.thirdparty.com.codahale.metrics.Metric;

/**
 * Publishes Ratis' own metrics (log flush and sync times, follower append latency, apply
 * latency, pending requests, ...) in a member's registry, so that {@code /metrics} shows where a
 * write spends its time inside Raft. Ratis keeps them in process-wide registries of its shaded
 * Dropwizard, created as its components start: {@link #sync} copies the ones of one member (by
 * its Raft peer ID) and is called again periodically to pick up registries created later.
 *
 * <p>Names: {@code ratis_<component>_<metric>} (Ratis' own name without the member ID),
 * lower-cased, with every character Prometheus does not allow replaced by {@code _}; timers are in
 * seconds.
 */
final class RatisMetrics {
  private RatisMetrics() {}

  /** Registers in {@code target} the Ratis metrics of member {@code peerId} not registered yet. */
  static void sync(String peerId, MetricRegistry target) {
    for (RatisMetricRegistry r : MetricRegistries.global().getMetricRegistries()) {
      String prefix = r.getMetricRegistryInfo().getPrefix();
      if (!(r instanceof RatisMetricRegistryImpl impl) || prefix == null
          || !(prefix.equals(peerId) || prefix.startsWith(peerId + "@") || prefix.startsWith(peerId + "-"))) {
        continue;
      }
      String component = r.getMetricRegistryInfo().getMetricsComponentName();
      for (Map.Entry<String, Metric> e : impl.getDropWizardMetricRegistry().getMetrics().entrySet()) {
        String name = name(component, e.getKey(), prefix);
        if (target.getMetrics().containsKey(name)) {
          continue;
        }
        com.codahale.metrics.Metric adapted = adapt(e.getValue());
        if (adapted != null) {
          try {
            target.register(name, adapted);
          } catch (IllegalArgumentException raced) {
            // registered meanwhile by a concurrent sync
          }
        }
      }
    }
  }

  static String name(String component, String metric, String prefix) {
    // Ratis puts the registry prefix (member@group) in its metric names: drop it.
    String m = metric.replace(prefix, "");
    // Ratis' names already start with "ratis.<component>." mostly; add what is missing.
    String full = m.startsWith("ratis") ? m : "ratis_" + component + "_" + m;
    return full.toLowerCase().replaceAll("[^a-z0-9_]+", "_").replaceAll("_+", "_")
        .replaceAll("_$", "");
  }

  private static com.codahale.metrics.Metric adapt(Metric m) {
    if (m instanceof org.apache.ratis.thirdparty.com.codahale.metrics.Timer t) {
      return new AdaptedTimer(t);
    }
    if (m instanceof Counter c) {
      return (Gauge<Long>) c::getCount;
    }
    if (m instanceof Meter meter) {
      return (Gauge<Long>) meter::getCount;
    }
    if (m instanceof org.apache.ratis.thirdparty.com.codahale.metrics.Gauge<?> g) {
      return (Gauge<Object>) () -> {
        Object v = g.getValue();
        return v instanceof Number || v instanceof Boolean ? v : null;
      };
    }
    return null;
  }

  /** A Ratis timer seen through our Dropwizard's Timer type (its values are nanoseconds). */
  private static final class AdaptedTimer extends Timer {
    private final org.apache.ratis.thirdparty.com.codahale.metrics.Timer timer;

    AdaptedTimer(org.apache.ratis.thirdparty.com.codahale.metrics.Timer timer) {
      this.timer = timer;
    }

    @Override
    public long getCount() {
      return timer.getCount();
    }

    @Override
    public double getMeanRate() {
      return timer.getMeanRate();
    }

    @Override
    public double getOneMinuteRate() {
      return timer.getOneMinuteRate();
    }

    @Override
    public double getFiveMinuteRate() {
      return timer.getFiveMinuteRate();
    }

    @Override
    public double getFifteenMinuteRate() {
      return timer.getFifteenMinuteRate();
    }

    @Override
    public void update(long duration, TimeUnit unit) {
      throw new UnsupportedOperationException("a view of a Ratis timer");
    }

    @Override
    public Snapshot getSnapshot() {
      org.apache.ratis.thirdparty.com.codahale.metrics.Snapshot s = timer.getSnapshot();
      return new Snapshot() {
        @Override
        public double getValue(double quantile) {
          return s.getValue(quantile);
        }

        @Override
        public long[] getValues() {
          return s.getValues();
        }

        @Override
        public int size() {
          return s.size();
        }

        @Override
        public long getMax() {
          return s.getMax();
        }

        @Override
        public double getMean() {
          return s.getMean();
        }

        @Override
        public long getMin() {
          return s.getMin();
        }

        @Override
        public double getStdDev() {
          return s.getStdDev();
        }

        @Override
        public void dump(OutputStream output) {
          s.dump(output);
        }
      };
    }
  }
}
