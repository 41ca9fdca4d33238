package audit

import (
	"os"
	"syscall"
)

// openDirectIO opens path for writes that bypass the page cache and are
// durable when they return.
func openDirectIO(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_DIRECT|syscall.O_DSYNC, 0o600)
}

// fileID is the device and inode of a file.
func fileID(fi os.FileInfo) logID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return logID{}
	}
	return logID{dev: uint64(st.Dev), ino: st.Ino}
}
