//go:build !unix

package sqlite

import "os"

// lockFile opens the lock file; where flock is not to be had, it does not
// lock.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
