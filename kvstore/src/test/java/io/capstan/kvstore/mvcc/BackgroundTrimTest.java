package io.capstan.kvstore.mvcc;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.RangeRequest;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Compaction that trims the key histories in small background steps ({@link
 * MvccStore#trimInBackground}) shows exactly the state of one that trims at once, whatever the
 * writes, deletions and further compactions between its steps; once the steps ran, the two hold
 * the same versions.
 */
class BackgroundTrimTest {
  private static final ByteString ALL = ByteString.copyFrom(new byte[] {0});

  @Test
  void trimmingInStepsShowsTheSameStateAsTrimmingAtOnce() throws IOException {
    for (long seed = 0; seed < 300; seed++) {
      Random random = new Random(seed);
      MvccStore atOnce = new MvccStore();
      MvccStore inSteps = new MvccStore();
      ArrayDeque<Runnable> steps = new ArrayDeque<>();
      inSteps.trimInBackground(steps::add, 1 + random.nextInt(4));
      int compactions = 0;
      List<Object[]> images = new ArrayList<>(); // {state of inSteps, snapshot of atOnce taken with it}
      for (int op = 0; op < 200; op++) {
        int dice = random.nextInt(100);
        if (dice < 5) {
          images.add(new Object[] {StoreSnapshot.capture(inSteps, new ClusterMembers()), snapshot(atOnce)});
        } else if (dice < 10 && !images.isEmpty()) {
          assertWrittenLaterAsTaken(images.remove(random.nextInt(images.size())), seed);
        } else if (dice < 55) {
          ByteString key = ByteString.copyFromUtf8("k" + random.nextInt(25));
          ByteString value = ByteString.copyFromUtf8("v" + op);
          atOnce.write(t -> t.put(key, value, 0));
          inSteps.write(t -> t.put(key, value, 0));
        } else if (dice < 65) {
          int from = random.nextInt(25);
          ByteString start = ByteString.copyFromUtf8("k" + from);
          ByteString end = ByteString.copyFromUtf8("k" + (from + random.nextInt(3)) + "~");
          atOnce.write(t -> t.deleteRange(start, end));
          inSteps.write(t -> t.deleteRange(start, end));
        } else if (dice < 75 && atOnce.currentRevision() > atOnce.compactRevision()) {
          long rev = atOnce.compactRevision() + 1 + random.nextInt((int) (atOnce.currentRevision() - atOnce.compactRevision()));
          atOnce.compact(rev);
          inSteps.compact(rev);
          compactions++;
        } else if (!steps.isEmpty()) {
          steps.poll().run();
        }
        assertSameVisibleState(atOnce, inSteps, random, seed);
      }
      for (Object[] image : images) {
        assertWrittenLaterAsTaken(image, seed);
      }
      while (!steps.isEmpty()) {
        steps.poll().run();
      }
      assertSameVisibleState(atOnce, inSteps, random, seed);
      assertThat(inSteps.approximateBytes()).as("seed %d, %d compactions: bytes after the steps", seed, compactions)
          .isEqualTo(atOnce.approximateBytes());
      assertThat(inSteps.keyCount()).as("seed %d: keys after the steps", seed).isEqualTo(atOnce.keyCount());
      assertThat(snapshot(inSteps)).as("seed %d: snapshots", seed).isEqualTo(snapshot(atOnce));
    }
  }

  /**
   * An image of the stepping store, written only now (after more writes, compactions and trim
   * steps), loads to the state a snapshot of the trim-at-once store made when the image was taken
   * loads to: the same ranges at every revision it holds and the same events.
   */
  private static void assertWrittenLaterAsTaken(Object[] image, long seed) throws IOException {
    ByteArrayOutputStream later = new ByteArrayOutputStream();
    try (StoreSnapshot.State state = (StoreSnapshot.State) image[0]) {
      StoreSnapshot.write(state, 1, 1, later);
    }
    MvccStore fromImage = load(later.toByteArray());
    MvccStore reference = load((byte[]) image[1]);
    assertThat(fromImage.currentRevision()).isEqualTo(reference.currentRevision());
    assertThat(fromImage.compactRevision()).isEqualTo(reference.compactRevision());
    long low = Math.max(1, reference.compactRevision());
    for (long r = low; r <= reference.currentRevision(); r++) {
      RangeRequest all = RangeRequest.newBuilder().setKey(ALL).setRangeEnd(ALL).setRevision(r).build();
      assertThat(fromImage.range(all).build()).as("seed %d: image written later, range at %d", seed, r)
          .isEqualTo(reference.range(all).build());
    }
    assertThat(events(fromImage, low, false)).isEqualTo(events(reference, low, false));
  }

  private static MvccStore load(byte[] snapshot) throws IOException {
    java.nio.file.Path file = java.nio.file.Files.createTempFile("image", ".snap");
    try {
      java.nio.file.Files.write(file, snapshot);
      MvccStore s = new MvccStore();
      StoreSnapshot.load(file, s, new ClusterMembers());
      return s;
    } finally {
      java.nio.file.Files.delete(file);
    }
  }

  private static void assertSameVisibleState(MvccStore a, MvccStore b, Random random, long seed) {
    assertThat(b.currentRevision()).isEqualTo(a.currentRevision());
    assertThat(b.compactRevision()).isEqualTo(a.compactRevision());
    long low = Math.max(1, a.compactRevision());
    long rev = low + random.nextInt((int) (a.currentRevision() - low + 1));
    for (long r : new long[] {a.currentRevision(), rev}) {
      RangeRequest all = RangeRequest.newBuilder().setKey(ALL).setRangeEnd(ALL).setRevision(r).build();
      assertThat(b.range(all).build()).as("seed %d: range at %d", seed, r).isEqualTo(a.range(all).build());
    }
    assertThat(events(b, low, true)).as("seed %d: history from %d", seed, low).isEqualTo(events(a, low, true));
  }

  private static List<Object> events(MvccStore s, long from, boolean prevKv) {
    List<Object> out = new ArrayList<>();
    s.replay(from, Integer.MAX_VALUE, c -> {
      out.add(c.revision());
      for (Change ch : c.changes()) {
        out.add(ch.event(prevKv));
      }
    });
    return out;
  }

  private static byte[] snapshot(MvccStore s) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    StoreSnapshot.write(s, new ClusterMembers(), 1, 1, out);
    return out.toByteArray();
  }
}
