package audit

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openDirectIO opens path for writes that bypass the page cache and are
// durable when they return.
func openDirectIO(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_DIRECT|syscall.O_DSYNC, 0o600)
}

// idOf is the id of the open file f.
func idOf(f *os.File) logID {
	return statxID(int(f.Fd()), "", unix.AT_EMPTY_PATH)
}

// idAt is the id of the file at path (zero if there is none).
func idAt(path string) logID {
	return statxID(unix.AT_FDCWD, path, 0)
}

func statxID(dirfd int, path string, flags int) logID {
	var st unix.Statx_t
	if err := unix.Statx(dirfd, path, flags, unix.STATX_INO|unix.STATX_BTIME, &st); err != nil || st.Mask&unix.STATX_BTIME == 0 {
		return logID{}
	}
	return logID{dev: unix.Mkdev(st.Dev_major, st.Dev_minor), ino: st.Ino, born: st.Btime.Sec*1e9 + int64(st.Btime.Nsec)}
}
