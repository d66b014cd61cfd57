"""A pass-through FUSE filesystem that fails on demand, as a sick or full disk does.

    python3 failing_disk_fs.py BACKING_DIR MOUNT_POINT FAIL_FLAG

Mounts BACKING_DIR at MOUNT_POINT (in the foreground, until unmounted). Every operation is
passed through to BACKING_DIR, except while the file FAIL_FLAG exists:
- if it says `fsync`, fsync and fdatasync fail with EIO (a disk that stops taking writes,
  or a lost network volume);
- if it says `full`, writes are short and end in ENOSPC (a disk filling up mid-write);
- if it says `broken`, writes are short and end in EIO, and truncating fails with EIO too
  (a disk going bad mid-write: what was half written cannot even be taken back).
Nothing short of a real filesystem can show a process these answers. The gateway's
durability tests use it to check what the node does when its telemetry log cannot be
written or synced.

Written for mfusepy (ctypes bindings for libfuse 3); needs root or /dev/fuse access.
"""

import errno
import os
import sys

import mfusepy as fuse


class FailingDisk(fuse.Operations):
    use_ns = True

    def __init__(self, root, fail_flag):
        self.root = os.path.realpath(root)
        # Absolute: libfuse changes the working directory to / once mounted.
        self.fail_flag = os.path.abspath(fail_flag)

    def _full(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _io(self, call, *args):
        try:
            return call(*args)
        except OSError as e:
            raise fuse.FuseOSError(e.errno or errno.EIO) from e

    # --- metadata -----------------------------------------------------------------------------
    def getattr(self, path, fh=None):
        st = self._io(os.lstat, self._full(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
                "st_atime_ns", "st_mtime_ns", "st_ctime_ns")
        attrs = {k: getattr(st, k) for k in keys}
        for k in ("st_atime", "st_mtime", "st_ctime"):
            attrs[k] = attrs.pop(k + "_ns")
        return attrs

    def access(self, path, amode):
        if not os.access(self._full(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path, mode):
        return self._io(os.chmod, self._full(path), mode)

    def chown(self, path, uid, gid):
        return self._io(os.chown, self._full(path), uid, gid)

    def utimens(self, path, times=None):
        return self._io(os.utime, self._full(path), None, times)

    def statfs(self, path):
        st = self._io(os.statvfs, self._full(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    # --- directories --------------------------------------------------------------------------
    def readdir(self, path, fh):
        return [".", ".."] + self._io(os.listdir, self._full(path))

    def mkdir(self, path, mode):
        return self._io(os.mkdir, self._full(path), mode)

    def rmdir(self, path):
        return self._io(os.rmdir, self._full(path))

    def unlink(self, path):
        return self._io(os.unlink, self._full(path))

    def rename(self, old, new):
        return self._io(os.rename, self._full(old), self._full(new))

    # --- files --------------------------------------------------------------------------------
    def open(self, path, flags):
        return self._io(os.open, self._full(path), flags)

    def create(self, path, mode, fi=None):
        return self._io(os.open, self._full(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, size, offset, fh):
        return self._io(os.pread, fh, size, offset)

    def _failing(self, what):
        try:
            with open(self.fail_flag) as f:
                return f.read().strip() == what
        except FileNotFoundError:
            return False

    def write(self, path, data, offset, fh):
        failing = "full" if self._failing("full") else "broken" if self._failing("broken") else None
        if failing:
            # As a disk fills up (or goes bad) mid-write: the first half goes, the caller's
            # retries get a half of what is left each, and the last byte an error. Whoever
            # writes is left with a torn record to take back.
            if len(data) <= 1:
                raise fuse.FuseOSError(errno.ENOSPC if failing == "full" else errno.EIO)
            data = data[: len(data) // 2]
        return self._io(os.pwrite, fh, data, offset)

    def truncate(self, path, length, fh=None):
        if self._failing("broken"):
            raise fuse.FuseOSError(errno.EIO)
        if fh is not None:
            return self._io(os.ftruncate, fh, length)
        return self._io(os.truncate, self._full(path), length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return self._io(os.close, fh)

    def fsync(self, path, datasync, fh):
        if self._failing("fsync"):
            raise fuse.FuseOSError(errno.EIO)
        return self._io(os.fdatasync if datasync else os.fsync, fh)

    def fsyncdir(self, path, datasync, fh):
        if self._failing("fsync"):
            raise fuse.FuseOSError(errno.EIO)
        return 0


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    backing, mount_point, fail_flag = sys.argv[1:]
    fuse.FUSE(FailingDisk(backing, fail_flag), mount_point, foreground=True,
              nothreads=True)


if __name__ == "__main__":
    main()
