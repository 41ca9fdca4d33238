//go:build !linux

package audit

import (
	"errors"
	"os"
)

// openDirectIO: direct I/O is used only on Linux; elsewhere the device
// fsyncs its log.
func openDirectIO(string) (*os.File, error) {
	return nil, errors.New("direct I/O is not used on this system")
}

// idOf and idAt: a file's identity is used only on Linux.
func idOf(*os.File) logID { return logID{} }
func idAt(string) logID   { return logID{} }
