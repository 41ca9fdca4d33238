//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile opens (creating, mode 0600) and locks the file at path for this
// process alone. SQLite lets several processes share a database, but two
// Keyhold servers on one store would each cache its mounts, policies and
// audit devices apart, and interleave two hash chains in one audit file:
// the second is refused. The kernel drops the lock when the process ends.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("another process (a Keyhold server?) has the store open (%s is locked); one store serves one server, and several nodes need PostgreSQL", path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
