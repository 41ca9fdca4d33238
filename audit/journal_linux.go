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
