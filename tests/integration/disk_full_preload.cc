// An LD_PRELOAD library that makes a directory's file system look full, for the full-disk
// test in fault_test.cc: no tmpfs to mount, so no root or CAP_SYS_ADMIN.
//
// While the file named by $DOPPEL_TEST_DISK_FULL exists, writes to regular files under the
// directory $DOPPEL_TEST_DISK_DIR fail with ENOSPC, as write(2) does on a full file system;
// once it is removed they succeed again. Everything else goes to the C library. RocksDB writes
// its WAL, SST and MANIFEST files with write, pwrite and writev, so it sees the error a full
// disk gives (an IOError with the NoSpace subcode) and recovers the same way once space is
// back.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

namespace {

// True when `fd` is a regular file under $DOPPEL_TEST_DISK_DIR and the disk is "full".
bool DiskFull(int fd) {
  const char* dir = getenv("DOPPEL_TEST_DISK_DIR");
  const char* flag = getenv("DOPPEL_TEST_DISK_FULL");
  if (dir == nullptr || flag == nullptr || *dir == '\0') return false;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (access(flag, F_OK) != 0) return false;
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return false;
  path[n] = '\0';
  const size_t len = strlen(dir);
  return strncmp(path, dir, len) == 0 && (path[len] == '/' || path[len] == '\0');
}

template <class F>
F Next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t n) {
  static const auto real = Next<ssize_t (*)(int, const void*, size_t)>("write");
  if (n > 0 && DiskFull(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  static const auto real = Next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  if (n > 0 && DiskFull(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, n, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t offset) {
  static const auto real = Next<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
  if (n > 0 && DiskFull(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, n, offset);
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  static const auto real = Next<ssize_t (*)(int, const struct iovec*, int)>("writev");
  if (count > 0 && DiskFull(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, iov, count);
}

int fallocate(int fd, int mode, off_t offset, off_t len) {
  static const auto real = Next<int (*)(int, int, off_t, off_t)>("fallocate");
  if (DiskFull(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, mode, offset, len);
}

}  // extern "C"
