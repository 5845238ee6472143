package io.capstan.common;

import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import com.codahale.metrics.jvm.GarbageCollectorMetricSet;
import com.codahale.metrics.jvm.MemoryUsageGaugeSet;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.concurrent.ForkJoinPool;

/**
 * The process's JVM figures on {@code /metrics}: heap and pools ({@code jvm_memory_*}),
 * collections ({@code jvm_gc_*}), threads alive and started since the start
 * ({@code jvm_threads_started}: a count that climbs with the request rate means a thread per
 * request somewhere), and the common pool's parallelism (see {@link CommonPool}).
 */
public final class JvmMetrics {
  private JvmMetrics() {}

  /** Registers the gauges once per registry. */
  public static void register(MetricRegistry metrics) {
    synchronized (metrics) {
      if (metrics.getGauges().containsKey("jvm.threads.started")) {
        return;
      }
      ThreadMXBean threads = ManagementFactory.getThreadMXBean();
      metrics.register("jvm.threads.live", (Gauge<Integer>) threads::getThreadCount);
      metrics.register("jvm.threads.started", (Gauge<Long>) threads::getTotalStartedThreadCount);
      metrics.register("jvm.common_pool.parallelism", (Gauge<Integer>) ForkJoinPool::getCommonPoolParallelism);
      metrics.register("jvm.memory", new MemoryUsageGaugeSet());
      metrics.register("jvm.gc", new GarbageCollectorMetricSet());
    }
  }
}
