package io.capstan.kvstore;

import io.capstan.kvstore.mvcc.SnapshotEnvelope;
import io.capstan.kvstore.mvcc.StoreSnapshot;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code capstan kvstore-restore}: prepares a member's data directory to start a NEW cluster from
 * a file written by {@code etcdctl snapshot save} against a Capstan kvstore. Run it for every
 * member of the new cluster with the same file, then start the members as a new cluster (the
 * Raft log starts empty; every member begins from the same restored state).
 */
@Command(name = "capstan kvstore-restore", mixinStandardHelpOptions = true,
    description = "Prepares a data dir so that a new kvstore member starts from a saved snapshot.")
public final class SnapshotRestoreMain implements Callable<Integer> {
  static final String RESTORE_FILE = "restore.snap";

  @Option(names = "--snapshot", required = true, description = "The file 'etcdctl snapshot save' wrote.")
  Path snapshot;

  @Option(names = "--data-dir", required = true, description = "The new member's data directory (must not hold Raft state).")
  Path dataDir;

  @Override
  public Integer call() throws Exception {
    if (Files.exists(dataDir.resolve("raft"))) {
      System.err.println("capstan kvstore-restore: " + dataDir + " already holds Raft state; use an empty data dir");
      return 2;
    }
    Files.createDirectories(dataDir);
    Path target = dataDir.resolve(RESTORE_FILE);
    // A file from 'etcdctl snapshot save' is wrapped in etcd's checksum envelope; a file copied
    // from a member's snapshot directory is not.
    if (!SnapshotEnvelope.unwrap(snapshot, target)) {
      Files.copy(snapshot, target, StandardCopyOption.REPLACE_EXISTING);
    }
    try {
      StoreSnapshot.verify(target);
    } catch (java.io.IOException e) {
      Files.deleteIfExists(target);
      throw e;
    }
    System.out.println("restored snapshot " + snapshot + " into " + dataDir
        + "; start the member with --data-dir " + dataDir + " --initial-cluster-state new");
    return 0;
  }

  public static void main(String[] args) {
    System.exit(new CommandLine(new SnapshotRestoreMain()).execute(args));
  }
}
