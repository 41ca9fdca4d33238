package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// DefaultMaxMessage bounds a request message unless configured otherwise.
const DefaultMaxMessage = 1 << 20

// FrameError says why a message could not be framed. The stream cannot be
// resynchronised after one: the connection has to be closed (after an
// Invalid Message response, where one can still be written).
type FrameError struct{ Msg string }

func (e *FrameError) Error() string { return "kmip framing: " + e.Msg }

// ErrEmpty is returned by ReadMessage when the peer closed the stream
// between messages (a clean end of the connection).
var ErrEmpty = errors.New("kmip framing: connection closed between messages")

// ReadMessage reads one request message from r: the 8-byte header, which
// must be a Request Message structure of at most max bytes, then exactly
// the declared length. Nothing is allocated for a length over max. The
// first header byte is read on its own so that a caller can apply an idle
// timeout before it and a message timeout after it (first, if set, is
// called once that byte has arrived).
func ReadMessage(r io.Reader, max int, first func()) ([]byte, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:1]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrEmpty
		}
		return nil, err
	}
	if first != nil {
		first()
	}
	if _, err := io.ReadFull(r, h[1:]); err != nil {
		return nil, unexpected(err)
	}
	tag := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	if tag != kmip.TagRequestMessage || ttlv.Type(h[3]) != ttlv.TypeStructure {
		return nil, &FrameError{Msg: fmt.Sprintf("the message is not a Request Message structure (tag 0x%06X, type 0x%02X)", tag, h[3])}
	}
	length := int64(binary.BigEndian.Uint32(h[4:]))
	if length > int64(max-HeaderSize) {
		return nil, &FrameError{Msg: fmt.Sprintf("declared length %d is over the limit of %d bytes", length, max-HeaderSize)}
	}
	if length%8 != 0 {
		return nil, &FrameError{Msg: fmt.Sprintf("declared length %d is not a multiple of 8", length)}
	}
	msg := make([]byte, HeaderSize+int(length))
	copy(msg, h[:])
	if _, err := io.ReadFull(r, msg[HeaderSize:]); err != nil {
		return nil, unexpected(err)
	}
	return msg, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
