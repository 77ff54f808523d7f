package io.runstream.hadoop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system, with permissions set through java.nio instead of a child process.
 *
 * <p>Without Hadoop's native library, RawLocalFileSystem runs the {@code chmod} command for every
 * file and folder it creates: about 2 ms a file, most of the cost of writing a Delta table's
 * small files. {@code Files.setPosixFilePermissions} makes the same chmod(2) call in-process.
 * Only the permission bits are set (no setuid, setgid or sticky bit), as Hadoop's own
 * permissions for files it creates have none.
 */
public class NioRawLocalFileSystem extends RawLocalFileSystem {
  // bit i of an FsPermission's short, from others' execute (bit 0) to the owner's read (bit 8)
  private static final PosixFilePermission[] BITS = {
    PosixFilePermission.OTHERS_EXECUTE,
    PosixFilePermission.OTHERS_WRITE,
    PosixFilePermission.OTHERS_READ,
    PosixFilePermission.GROUP_EXECUTE,
    PosixFilePermission.GROUP_WRITE,
    PosixFilePermission.GROUP_READ,
    PosixFilePermission.OWNER_EXECUTE,
    PosixFilePermission.OWNER_WRITE,
    PosixFilePermission.OWNER_READ,
  };

  @Override
  public void setPermission(Path path, FsPermission permission) throws IOException {
    short mode = permission.toShort();
    Set<PosixFilePermission> granted = EnumSet.noneOf(PosixFilePermission.class);
    for (int bit = 0; bit < BITS.length; bit++) {
      if ((mode & (1 << bit)) != 0) {
        granted.add(BITS[bit]);
      }
    }
    Files.setPosixFilePermissions(pathToFile(path).toPath(), granted);
  }
}
