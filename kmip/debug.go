package kmip

import (
	"context"
	"log/slog"
	"os"
)

// debug holds the KMIP debug switches, read once from the environment when
// the Manager is created: KMIP_CONNECTION_DEBUGGING (connections, TLS
// handshakes and the authenticated identity), KMIP_REQUEST_DEBUGGING and
// KMIP_RESPONSE_DEBUGGING (decoded messages, key material redacted),
// KMIP_DECODING_DEBUGGING (framing, parsing and decoding steps) and
// KMIP_INDEX_DEBUGGING (object look-ups and Locate queries), each "1" to
// enable. The lines go to the logger at Info level: setting a variable is
// the request to see them.
type debug struct {
	log        *slog.Logger
	connection bool
	request    bool
	response   bool
	decoding   bool
	index      bool
}

func newDebug(log *slog.Logger, getenv func(string) string) debug {
	if getenv == nil {
		getenv = os.Getenv
	}
	on := func(name string) bool { return getenv(name) == "1" }
	return debug{
		log:        log,
		connection: on("KMIP_CONNECTION_DEBUGGING"),
		request:    on("KMIP_REQUEST_DEBUGGING"),
		response:   on("KMIP_RESPONSE_DEBUGGING"),
		decoding:   on("KMIP_DECODING_DEBUGGING"),
		index:      on("KMIP_INDEX_DEBUGGING"),
	}
}

func (d debug) logf(ctx context.Context, on bool, msg string, args ...any) {
	if on {
		d.log.InfoContext(ctx, "kmip debug: "+msg, args...)
	}
}
