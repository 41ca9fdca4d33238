package kmip

import (
	"context"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/ovh/kmip-go"
)

// RNG Retrieve and RNG Seed (KMIP 1.4 §4.35, §4.36): the token's generator.

// maxRandom bounds one RNG Retrieve.
const maxRandom = 1 << 20

// rngRetrieve returns random bytes from the token.
func rngRetrieve(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*wire.RNGRetrieveRequestPayload)
	if req.DataLength <= 0 || req.DataLength > maxRandom {
		return nil, invalidField("Data Length must be 1 to %d bytes", maxRandom)
	}
	if err := c.b.spend(int(req.DataLength)); err != nil {
		return nil, err
	}
	b, err := c.b.st.vals.h.Random(ctx, int(req.DataLength))
	if err != nil {
		return nil, err
	}
	c.respSensitive["data"] = b
	return &wire.RNGRetrieveResponsePayload{Data: b}, nil
}

// rngSeed gives the token's generator a seed, as much of it as the
// caller's role allows (Role.RNGSeedMaxBytes), and answers how many bytes
// were used. A token that does not take seeds uses none.
func rngSeed(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*wire.RNGSeedRequestPayload)
	if len(req.Data) == 0 {
		return nil, invalidField("RNG Seed needs Data")
	}
	n := len(req.Data)
	if lim := c.b.role.RNGSeedMaxBytes; lim != nil && *lim < n {
		n = *lim
	}
	if n > 0 {
		err := c.b.st.vals.h.SeedRandom(ctx, req.Data[:n])
		switch {
		case hsm.KindOf(err) == hsm.KindUnsupported:
			n = 0
		case err != nil:
			return nil, err
		}
	}
	c.note("seed_bytes_used", n)
	return &wire.RNGSeedResponsePayload{DataLength: int32(n)}, nil
}
