package io.capstan.e2e;

import java.time.Duration;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs the stock etcdctl (API v3) binary with a timeout and captures what it prints. */
public final class Etcdctl {
  /** What one invocation printed and returned. */
  public record Result(int exitCode, String out, String err) {
    public Result ok() {
      if (exitCode != 0) {
        throw new AssertionError("etcdctl failed (" + exitCode + "): " + err + out);
      }
      return this;
    }
  }

  private final String endpoints;

  public Etcdctl(String endpoints) {
    this.endpoints = endpoints;
  }

  public static String binary() {
    for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
      Path p = Path.of(dir, "etcdctl");
      if (Files.isExecutable(p)) {
        return p.toString();
      }
    }
    throw new IllegalStateException("etcdctl not found on PATH: install it (apt-get install -y etcd-client; .ci/run does)");
  }

  public Result run(String... args) {
    return runWithInput(null, args);
  }

  public Result runWithInput(String stdin, String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(binary());
    cmd.add("--endpoints=" + endpoints);
    cmd.add("--command-timeout=15s");
    cmd.addAll(List.of(args));
    try {
      Path out = Files.createTempFile("etcdctl", ".out");
      Path err = Files.createTempFile("etcdctl", ".err");
      try {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile());
        pb.environment().put("ETCDCTL_API", "3");
        Process p = pb.start();
        if (stdin != null) {
          p.getOutputStream().write(stdin.getBytes(StandardCharsets.UTF_8));
        }
        p.getOutputStream().close();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
          p.destroyForcibly();
          throw new AssertionError("etcdctl " + String.join(" ", args) + " did not finish in 60 s");
        }
        return new Result(p.exitValue(), Files.readString(out), Files.readString(err));
      } finally {
        Files.deleteIfExists(out);
        Files.deleteIfExists(err);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** A long-running etcdctl (e.g. watch) whose output is read as it comes. */
  public static final class Background implements AutoCloseable {
    private final Process process;
    private final StringBuffer out = new StringBuffer();

    Background(Process process) {
      this.process = process;
      Thread reader = new Thread(() -> {
        try (InputStream in = process.getInputStream()) {
          byte[] buf = new byte[4096];
          int n;
          while ((n = in.read(buf)) > 0) {
            out.append(new String(buf, 0, n, StandardCharsets.UTF_8));
          }
        } catch (IOException ignored) {
          // the process ended
        }
      }, "etcdctl-reader");
      reader.setDaemon(true);
      reader.start();
    }

    public String output() {
      return out.toString();
    }

    /** Waits until the output contains {@code text}; fails after the timeout. */
    public void await(String text, long timeoutMs) {
      org.awaitility.Awaitility.await("etcdctl output contains '" + text + "'")
          .atMost(Duration.ofMillis(timeoutMs)).pollInterval(Duration.ofMillis(20))
          .until(() -> out.toString().contains(text));
    }

    @Override
    public void close() {
      process.destroyForcibly();
    }
  }

  public Background start(String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(binary());
    cmd.add("--endpoints=" + endpoints);
    cmd.addAll(List.of(args));
    try {
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
      pb.environment().put("ETCDCTL_API", "3");
      return new Background(pb.start());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
