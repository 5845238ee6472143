import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedFrame;
import jdk.jfr.consumer.RecordedStackTrace;
import jdk.jfr.consumer.RecordedThread;
import jdk.jfr.consumer.RecordingFile;

/**
 * Reads the members' recordings of bench/alloc-profile.sh: for each member, the bytes each thread
 * allocated between two instants (jdk.ThreadAllocationStatistics, sampled once a second) and, from
 * the sampled allocations (jdk.ObjectAllocationSample, whose weight is the bytes the thread
 * allocated since its previous sample), the sites behind most of it.
 *
 * <p>[THREAD=&lt;regex&gt;] java bench/AllocProfile.java &lt;from&gt; &lt;to&gt; &lt;puts&gt; "&lt;m0=role;m1=role;...&gt;" m0.jfr m1.jfr ...
 */
public class AllocProfile {
  /** THREAD=<regex>: the sites of the sampled allocations of the matching threads only. */
  private static final java.util.regex.Pattern ONLY =
      System.getenv("THREAD") == null ? null : java.util.regex.Pattern.compile(System.getenv("THREAD"));
  /** Frames of these packages are the plumbing under an allocation, not its cause. */
  private static final List<String> PLUMBING = List.of("java.", "jdk.", "sun.", "com.codahale.");

  public static void main(String[] args) throws Exception {
    Instant from = Instant.parse(args[0]);
    Instant to = Instant.parse(args[1]);
    long puts = Long.parseLong(args[2]);
    Map<String, String> roles = new HashMap<>();
    for (String r : args[3].split(";")) {
      if (r.contains("=")) {
        roles.put(r.substring(0, r.indexOf('=')), r.substring(r.indexOf('=') + 1));
      }
    }
    for (int i = 4; i < args.length; i++) {
      Path file = Path.of(args[i]);
      String member = file.getFileName().toString().replace(".jfr", "");
      report(member, roles.getOrDefault(member, "?"), file, from, to, puts);
    }
  }

  private static void report(String member, String role, Path file, Instant from, Instant to, long puts) throws Exception {
    Map<Long, long[]> threadBytes = new HashMap<>(); // tid -> {first, last}
    Map<Long, String> threadNames = new HashMap<>();
    Map<String, Long> bySite = new HashMap<>();
    Map<String, Long> byCause = new HashMap<>();
    Map<String, Long> byOurs = new HashMap<>();
    long sampled = 0;
    int gcs = 0;
    long gcPauseNanos = 0;
    List<RecordedEvent> events = RecordingFile.readAllEvents(file);
    for (RecordedEvent e : events) {
      Instant t = e.getStartTime();
      if (t.isBefore(from) || t.isAfter(to)) {
        continue;
      }
      switch (e.getEventType().getName()) {
        case "jdk.ThreadAllocationStatistics" -> {
          RecordedThread th = e.getThread("thread");
          if (th == null) {
            continue;
          }
          long tid = th.getJavaThreadId();
          threadNames.put(tid, threadName(th));
          long v = e.getLong("allocated");
          long[] fl = threadBytes.computeIfAbsent(tid, k -> new long[] {v, v});
          fl[0] = Math.min(fl[0], v);
          fl[1] = Math.max(fl[1], v);
        }
        case "jdk.ObjectAllocationSample" -> {
          RecordedThread th = e.getThread("eventThread");
          if (ONLY != null && (th == null || !ONLY.matcher(threadName(th)).find())) {
            continue;
          }
          long w = e.getLong("weight");
          sampled += w;
          String cls = e.getClass("objectClass").getName();
          RecordedStackTrace st = e.getStackTrace();
          List<RecordedFrame> frames = st == null ? List.of() : st.getFrames();
          String top = frames.isEmpty() ? "?" : frame(frames.get(0));
          bySite.merge(cls + " at " + top, w, Long::sum);
          byCause.merge(cause(frames), w, Long::sum);
          byOurs.merge(ours(frames), w, Long::sum);
        }
        case "jdk.GarbageCollection" -> {
          gcs++;
          gcPauseNanos += e.getDuration("sumOfPauses").toNanos();
        }
        default -> { }
      }
    }
    long total = 0;
    Map<String, Long> allocatedByThread = new HashMap<>();
    for (var en : threadBytes.entrySet()) {
      long d = en.getValue()[1] - en.getValue()[0];
      total += d;
      allocatedByThread.merge(threadNames.get(en.getKey()), d, Long::sum);
    }
    System.out.printf("%n== %s (%s): %,d bytes allocated a put (%,d in all), %d collections, %.1f ms of pauses%n",
        member, role, total / puts, total, gcs, gcPauseNanos / 1e6);
    System.out.println("-- by thread (bytes a put)");
    print(allocatedByThread, puts, 12, total);
    System.out.printf("-- by first frame outside java/jdk/metrics (sampled weight, bytes a put; %,d sampled in all)%n", sampled);
    print(byCause, puts, 25, sampled);
    System.out.println("-- by the first Capstan frame on the stack (sampled weight, bytes a put)");
    print(byOurs, puts, 15, sampled);
    System.out.println("-- by class and allocating frame (sampled weight, bytes a put)");
    print(bySite, puts, 25, sampled);
  }

  private static void print(Map<String, Long> m, long puts, int n, long total) {
    List<Map.Entry<String, Long>> l = new ArrayList<>(m.entrySet());
    l.sort(Map.Entry.<String, Long>comparingByValue().reversed());
    for (int i = 0; i < Math.min(n, l.size()); i++) {
      var en = l.get(i);
      System.out.printf("%8d  %5.1f%%  %s%n", en.getValue() / puts, 100.0 * en.getValue() / Math.max(1, total), en.getKey());
    }
  }

  private static String threadName(RecordedThread th) {
    String n = th.getJavaName() != null ? th.getJavaName() : th.getOSName();
    return n == null ? "?" : n.replaceAll("\\d+", "#");
  }

  private static String frame(RecordedFrame f) {
    return f.getMethod().getType().getName() + "." + f.getMethod().getName() + ":" + f.getLineNumber();
  }

  /** The innermost frame of Capstan's own code, or what the stack's outermost frames say it is. */
  private static String ours(List<RecordedFrame> frames) {
    for (RecordedFrame f : frames) {
      if (f.getMethod().getType().getName().startsWith("io.capstan.")) {
        return frame(f);
      }
    }
    return "(no Capstan frame)";
  }

  /** The first frame not in the JDK, with the one it was called from (where the allocation was decided). */
  private static String cause(List<RecordedFrame> frames) {
    for (int i = 0; i < frames.size(); i++) {
      String type = frames.get(i).getMethod().getType().getName();
      if (PLUMBING.stream().noneMatch(type::startsWith)) {
        return frame(frames.get(i)) + (i + 1 < frames.size() ? " <- " + frame(frames.get(i + 1)) : "");
      }
    }
    return frames.isEmpty() ? "?" : frame(frames.get(0));
  }
}
