package wrap

import (
	"context"
	"crypto/rsa"
	"errors"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
)

// Token is what wrap needs of the HSM (satisfied by *hsm.HSM).
type Token interface {
	WrapOAEP(ctx context.Context, req hsm.TransferRequest) (*hsm.Transfer, error)
	WrapRSAAES(ctx context.Context, req hsm.TransferRequest) (*hsm.Transfer, error)
}

var _ Token = (*hsm.HSM)(nil)

// Request asks for a key wrapped for one cloud's import.
type Request struct {
	Scheme      Scheme
	Key         hsm.Key
	KeyType     hsm.KeyType // the key's type, checked against the scheme before the token is asked
	WrappingKey *rsa.PublicKey
	// AllowSoftwareOAEP lets hybrid schemes OAEP-encrypt the one-time
	// ephemeral key in Go when the token cannot do the scheme's hash.
	AllowSoftwareOAEP bool
	// KID is the Azure KEK's key id, written into the .byok header.
	KID string
}

// Result is the blob to hand to the cloud's import call and how it was made.
type Result struct {
	Blob []byte
	Path hsm.TransferPath
}

// Wrap builds the import blob of req.Scheme for req.Key in the token.
func Wrap(ctx context.Context, tok Token, req Request) (*Result, error) {
	sp, err := Lookup(req.Scheme)
	if err != nil {
		return nil, err
	}
	if err := CanCarry(req.Scheme, req.KeyType); err != nil {
		return nil, err
	}
	if err := CheckWrappingKey(req.Scheme, req.WrappingKey); err != nil {
		return nil, err
	}
	if sp.BYOK && req.KID == "" {
		return nil, fault.New(fault.BadInput, "%s needs the KEK's key id", req.Scheme)
	}
	tr := hsm.TransferRequest{Key: req.Key, WrappingKey: req.WrappingKey, Hash: sp.Hash, AllowSoftwareOAEP: req.AllowSoftwareOAEP}
	var t *hsm.Transfer
	if sp.Hybrid {
		t, err = tok.WrapRSAAES(ctx, tr)
		if errors.Is(err, hsm.ErrUnsupported) {
			return nil, fault.Wrap(fault.Unsupported, err, "%s needs RSA-OAEP with %v, which the token cannot do, and OAEP of the ephemeral key in software is forbidden (keymgmt forbid_software_oaep); a kms with oaep_hash=sha1 uses the token's", req.Scheme, sp.Hash)
		}
	} else {
		t, err = tok.WrapOAEP(ctx, tr)
		if errors.Is(err, hsm.ErrUnsupported) {
			return nil, fault.Wrap(fault.Unsupported, err, "%s needs the token to do RSA-OAEP with %v, which it cannot; use %s", req.Scheme, sp.Hash, sp.Fallback)
		}
	}
	if err != nil {
		return nil, err
	}
	if sp.BYOK {
		blob, err := MarshalBYOK(req.KID, t.Blob)
		if err != nil {
			return nil, err
		}
		return &Result{Blob: blob, Path: t.Path}, nil
	}
	return &Result{Blob: t.Blob, Path: t.Path}, nil
}
