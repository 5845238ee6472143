package io.capstan.e2e;

import static org.awaitility.Awaitility.await;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * A kvstore cluster of real processes started from the built distribution
 * ({@code deploy/target/capstan/bin/capstan kvstore}), on free loopback ports. Members can be
 * SIGKILLed and restarted; {@link #close} (and a shutdown hook) kills whatever is left.
 */
public final class DistCluster implements AutoCloseable {
  private final Path dist = Paths.get(System.getProperty("capstan.dist", "../deploy/target/capstan")).toAbsolutePath().normalize();
  private final Path root;
  private final int size;
  private final int[] clientPorts;
  private final int[] peerPorts;
  private final int[] metricsPorts;
  private final Process[] processes;
  private final List<String> extraArgs = new ArrayList<>();
  /** JVM flags (CAPSTAN_JAVA_OPTS) for one member's next start, by member. */
  private final java.util.Map<Integer, String> javaOpts = new java.util.HashMap<>();
  private final Thread hook = new Thread(this::killAll, "dist-cluster-cleanup");
  private Links links;

  public DistCluster(int size) {
    this.size = size;
    clientPorts = new int[size];
    peerPorts = new int[size];
    metricsPorts = new int[size];
    processes = new Process[size];
    for (int i = 0; i < size; i++) {
      clientPorts[i] = freePort();
      peerPorts[i] = freePort();
      metricsPorts[i] = freePort();
    }
    Path bin = dist.resolve("bin/capstan");
    if (!Files.isExecutable(bin)) {
      throw new IllegalStateException(bin + " is missing: build the distribution first (mvn -B package -DskipTests)");
    }
    try {
      root = Files.createTempDirectory("distcluster");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    Runtime.getRuntime().addShutdownHook(hook);
  }

  /** Flags added to every member's command line from the next start on, e.g. {@code --snapshot-count 200}. */
  public DistCluster withArgs(String... args) {
    extraArgs.addAll(List.of(args));
    return this;
  }

  /** JVM flags (e.g. a {@code -Dcapstan.failpoint...}) for member {@code i}'s starts from the next on; null for none. */
  public DistCluster withJavaOpts(int i, String opts) {
    if (opts == null) {
      javaOpts.remove(i);
    } else {
      javaOpts.put(i, opts);
    }
    return this;
  }

  /**
   * Members reach each other (peer and client ports) only through relays the test can cut
   * ({@link Links}); from the next start on. Clients of the test still use the members' own ports.
   */
  public DistCluster withLinks() {
    links = new Links(size, i -> isAlive(i) ? processes[i].pid() : null,
        (kind, i) -> kind == Links.Kind.PEER ? peerPorts[i] : clientPorts[i]);
    return this;
  }

  /** The relays between the members ({@link #withLinks}). */
  public Links links() {
    return links;
  }

  /** Starts every member and waits until each answers /readyz. */
  public DistCluster start() {
    for (int i = 0; i < size; i++) {
      startMember(i);
    }
    for (int i = 0; i < size; i++) {
      awaitReady(i, Duration.ofSeconds(60));
    }
    return this;
  }

  public String name(int i) {
    return "e" + i;
  }

  public Path dataDir(int i) {
    return root.resolve(name(i));
  }

  public Path root() {
    return root;
  }

  public Path bin() {
    return dist.resolve("bin/capstan");
  }

  public String endpoint(int i) {
    return "127.0.0.1:" + clientPorts[i];
  }

  /** All client endpoints, comma-separated, as etcdctl's --endpoints takes them. */
  public String endpoints() {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < size; i++) {
      out.add(endpoint(i));
    }
    return String.join(",", out);
  }

  public int size() {
    return size;
  }

  public void startMember(int i) {
    if (processes[i] != null && processes[i].isAlive()) {
      throw new IllegalStateException(name(i) + " is running");
    }
    // with links, the others reach a member at its relays' ports, which it advertises
    java.util.function.IntUnaryOperator peer = j -> links != null ? links.port(Links.Kind.PEER, j) : peerPorts[j];
    String initial = java.util.stream.IntStream.range(0, size)
        .mapToObj(j -> name(j) + "=http://127.0.0.1:" + peer.applyAsInt(j)).collect(Collectors.joining(","));
    List<String> cmd = new ArrayList<>(List.of(bin().toString(), "kvstore", "--name", name(i), "--data-dir", dataDir(i).toString(),
        "--listen-client-urls", "http://127.0.0.1:" + clientPorts[i],
        "--listen-peer-urls", "http://127.0.0.1:" + peerPorts[i],
        "--listen-metrics-urls", "http://127.0.0.1:" + metricsPorts[i],
        "--initial-cluster", initial, "--initial-cluster-state", "new"));
    if (links != null) {
      cmd.addAll(List.of("--initial-advertise-peer-urls", "http://127.0.0.1:" + peer.applyAsInt(i),
          "--advertise-client-urls", "http://127.0.0.1:" + links.port(Links.Kind.CLIENT, i)));
    }
    cmd.addAll(extraArgs);
    try {
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
          .redirectOutput(ProcessBuilder.Redirect.appendTo(root.resolve(name(i) + ".log").toFile()));
      if (javaOpts.containsKey(i)) {
        pb.environment().put("CAPSTAN_JAVA_OPTS", javaOpts.get(i));
      }
      processes[i] = pb.start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Member {@code i}'s exit status once its process has ended by itself within {@code timeout}; fails if it has not. */
  public int awaitExit(int i, Duration timeout) {
    try {
      if (!processes[i].waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        throw new AssertionError(name(i) + " still runs after " + timeout + ":\n" + log(i));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted", e);
    }
    return processes[i].exitValue();
  }

  /** SIGKILL, and wait until the process is gone. */
  public void kill(int i) {
    Process p = processes[i];
    if (p != null) {
      p.destroyForcibly();
      try {
        p.waitFor(30, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /**
   * SIGSTOP: the process stays, its sockets keep accepting bytes, nothing of it runs (a long GC
   * pause, a stalled VM) until {@link #resume}. {@link #close} kills a paused member too.
   */
  public void pause(int i) {
    signal(i, "STOP");
  }

  /** SIGCONT after {@link #pause}. */
  public void resume(int i) {
    signal(i, "CONT");
  }

  private void signal(int i, String signal) {
    try {
      Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(processes[i].pid())).inheritIO().start();
      if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
        throw new IllegalStateException("kill -" + signal + " " + name(i) + " failed");
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  public boolean isAlive(int i) {
    return processes[i] != null && processes[i].isAlive();
  }

  public boolean ready(int i) {
    try {
      HttpURLConnection c = (HttpURLConnection) URI.create("http://127.0.0.1:" + metricsPorts[i] + "/readyz").toURL().openConnection();
      c.setConnectTimeout(500);
      c.setReadTimeout(1000);
      try {
        return c.getResponseCode() == 200;
      } finally {
        c.disconnect();
      }
    } catch (IOException e) {
      return false;
    }
  }

  public void awaitReady(int i, Duration timeout) {
    await(name(i) + " ready").atMost(timeout).pollInterval(Duration.ofMillis(50)).until(() -> {
      if (!isAlive(i)) {
        throw new AssertionError(name(i) + " exited:\n" + log(i));
      }
      return ready(i);
    });
  }

  /** One figure from member {@code i}'s {@code /metrics} (Prometheus text), by its exact name. */
  public double metric(int i, String name) {
    try {
      for (String line : new String(metricsText(i), StandardCharsets.UTF_8).split("\n")) {
        if (line.startsWith(name + " ")) {
          return Double.parseDouble(line.substring(name.length() + 1).trim());
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    throw new AssertionError(name(i) + " has no metric " + name);
  }

  /** Member {@code i}'s {@code /metrics} page. */
  private byte[] metricsText(int i) throws IOException {
    HttpURLConnection c = (HttpURLConnection) URI.create("http://127.0.0.1:" + metricsPorts[i] + "/metrics").toURL().openConnection();
    c.setConnectTimeout(1000);
    c.setReadTimeout(5000);
    try (var in = c.getInputStream()) {
      return in.readAllBytes();
    } finally {
      c.disconnect();
    }
  }

  /**
   * Copies the members' logs, thread dumps and metrics ({@link #dumpState}) to {@code dir} (the
   * cluster's directory goes on close) and returns it; what went wrong on the way is added to {@code t}.
   */
  public Path keepLogs(Path dir, Throwable t) {
    try {
      Files.createDirectories(dir);
      for (int i = 0; i < size(); i++) {
        dumpState(i, dir).ifPresent(t::addSuppressed);
        Path log = root.resolve(name(i) + ".log");
        if (Files.exists(log)) {
          Files.copy(log, dir.resolve(name(i) + ".log"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
      }
    } catch (IOException e) {
      t.addSuppressed(e);
    }
    return dir;
  }

  /**
   * Writes member {@code i}'s threads ({@code jcmd <pid> Thread.print}) and its {@code /metrics}
   * text into {@code dir}, for a failed test to leave what the member was doing; does nothing for
   * a member that is not running. Best effort: a failure here is returned, not thrown.
   */
  public Optional<Exception> dumpState(int i, Path dir) {
    if (!isAlive(i)) {
      return Optional.empty();
    }
    try {
      Path jcmd = Paths.get(System.getProperty("java.home"), "bin", "jcmd");
      Process p = new ProcessBuilder(jcmd.toString(), Long.toString(processes[i].pid()), "Thread.print")
          .redirectErrorStream(true).redirectOutput(dir.resolve(name(i) + ".threads.txt").toFile()).start();
      if (!p.waitFor(30, TimeUnit.SECONDS)) {
        p.destroyForcibly();
      }
      Files.write(dir.resolve(name(i) + ".metrics.txt"), metricsText(i));
      return Optional.empty();
    } catch (IOException e) {
      return Optional.of(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return Optional.of(e);
    }
  }

  /**
   * Member {@code i}'s threads whose name contains {@code name}, each with its state and top
   * {@code frames} frames (parking frames left out), on one line, for a failure message; best
   * effort ({@code jcmd <pid> Thread.print}).
   */
  public String threadTops(int i, String name, int frames) {
    return threadTops(i, t -> t.name().contains(name), frames, "(no thread named *" + name + "*)");
  }

  /**
   * As {@link #threadTops(int, String, int)}, for the threads that are doing something: blocked
   * on a monitor, or running outside the native calls where idle threads wait (epoll, accept,
   * socket read). A thread stuck in a handler shows here; a quiet member shows none.
   */
  public String busyThreads(int i, int frames) {
    return threadTops(i, t -> t.state().startsWith("BLOCKED") || (t.state().startsWith("RUNNABLE") && !t.frames().isEmpty()
        && !t.frames().get(0).matches(".*(epollWait|EPoll\\.wait|Native\\.epoll|accept0|socketAccept|read0|readBytes|poll0|"
        + "waitForReferencePendingList|Thread\\.print|getThreadInfo|dumpThreads).*")), frames, "(none busy)");
  }

  private record ThreadState(String name, String state, List<String> frames) {}

  private String threadTops(int i, java.util.function.Predicate<ThreadState> which, int frames, String none) {
    if (!isAlive(i)) {
      return "(not running)";
    }
    try {
      Path jcmd = Paths.get(System.getProperty("java.home"), "bin", "jcmd");
      Process p = new ProcessBuilder(jcmd.toString(), Long.toString(processes[i].pid()), "Thread.print")
          .redirectErrorStream(true).start();
      List<String> lines = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).lines().toList();
      p.waitFor(30, TimeUnit.SECONDS);
      StringBuilder out = new StringBuilder();
      for (int l = 0; l < lines.size(); l++) {
        String header = lines.get(l);
        if (!header.startsWith("\"") || header.indexOf('"', 1) < 0) {
          continue;
        }
        String state = "";
        List<String> top = new ArrayList<>();
        for (int k = l + 1; k < lines.size() && !lines.get(k).isBlank(); k++) {
          String frame = lines.get(k).trim();
          if (frame.startsWith("java.lang.Thread.State:")) {
            state = frame.substring("java.lang.Thread.State:".length()).trim();
          } else if (frame.startsWith("at ") && !frame.startsWith("at jdk.internal.misc.")
              && !frame.startsWith("at java.util.concurrent.locks.")) {
            top.add(frame.substring(3));
          }
        }
        ThreadState t = new ThreadState(header.substring(1, header.indexOf('"', 1)), state, top);
        if (which.test(t)) {
          out.append(" [").append(t.name()).append(' ').append(t.state()).append(':');
          t.frames().stream().limit(frames).forEach(f -> out.append(' ').append(f));
          out.append(']');
        }
      }
      return out.length() == 0 ? none : out.toString().trim();
    } catch (IOException e) {
      return "(" + e + ")";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "(interrupted)";
    }
  }

  /** The lines of member {@code i}'s log that contain {@code text}. */
  public List<String> logLines(int i, String text) {
    try {
      return Files.readAllLines(root.resolve(name(i) + ".log")).stream().filter(l -> l.contains(text)).toList();
    } catch (IOException e) {
      return List.of("(no log: " + e + ")");
    }
  }

  public String log(int i) {
    try {
      List<String> lines = Files.readAllLines(root.resolve(name(i) + ".log"));
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }

  private void killAll() {
    for (int i = 0; i < size; i++) {
      kill(i);
    }
  }

  @Override
  public void close() {
    killAll();
    if (links != null) {
      links.close();
    }
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException ignored) {
      // already shutting down: the hook runs anyway
    }
    try (Stream<Path> files = Files.walk(root)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException ignored) {
      // a temp dir left behind changes no result
    }
  }

  static int freePort() {
    return io.capstan.common.FreePorts.next();
  }
}
