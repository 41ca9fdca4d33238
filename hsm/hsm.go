// Package hsm is the PKCS#11 key layer: every key the appliance manages is
// generated, wrapped and used inside the token.
//
// The token holds only key-encryption keys (KEKs, AES-256, versioned, found by
// label) and one MAC key per KEK version. Every other key is generated in the
// token as a session object, wrapped at once under the current KEK with
// CKM_AES_KEY_WRAP_PAD (RFC 5649), and leaves the layer only as a blob that is
// bound by an HMAC (computed in the token) to the id of the row it belongs to,
// so a blob moved to another id is refused. To use a key the blob is unwrapped
// into a session object whose handle is kept in a bounded LRU.
//
// This package is the only owner of C_Initialize/C_Finalize for its module
// (initialised with OS locking). A session is used by one goroutine at a time;
// a pool hands them out, and a lost session (closed, invalid handle, device
// error) is replaced and the call retried once. Public-key operations that need
// no secret (RSA encryption, signature verification) run in Go on the public
// key recorded in the blob.
package hsm

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// Config says which module and token to open.
type Config struct {
	Module      string // path of the PKCS#11 module
	TokenLabel  string // the token is found by label, never by slot number
	PIN         string // user PIN; the caller reads it from an env var or file
	Sessions    int    // size of the session pool; default 8
	CacheSize   int    // unwrapped keys kept as session objects; default 1024
	LabelPrefix string // prefix of the KEK and MAC key labels; default "keyhold"
	// KEKNonExtractable makes new KEKs and MAC keys never extractable, where
	// the vendor's tools clone HSMs; by default they leave the token only
	// wrapped under a key the security officer trusts (the KEK ceremony).
	KEKNonExtractable bool
	// NoCreateKEK opens a token without KEKs without creating one: for the
	// receiving side of the KEK ceremony, and for a node joining a cluster
	// whose KEKs it must receive rather than make.
	NoCreateKEK bool
	// TokenOnlyOAEP refuses RSA-OAEP decryptions that the token's own OAEP
	// cannot do (SoftHSM2 2.6.1 does SHA-1 only) instead of decoding OAEP in
	// Go over the token's raw RSA decryption (DecryptOAEP).
	TokenOnlyOAEP bool
	// Observe, if set, is called after every operation with its name, how
	// long it took (waiting for a session included) and its error.
	Observe func(op string, d time.Duration, err error)
}

// Info describes the token and library, for health reports.
type Info struct {
	TokenLabel      string `json:"token_label"`
	Manufacturer    string `json:"manufacturer"`
	Model           string `json:"model"`
	SerialNumber    string `json:"serial_number"`
	FirmwareVersion string `json:"firmware_version"`
	Library         string `json:"library"`
	LibraryVersion  string `json:"library_version"`
}

// HSM is an open token. It is safe for concurrent use.
type HSM struct {
	cfg   Config
	ctx   *pkcs11.Ctx
	slot  uint
	info  Info
	caps  Capabilities
	pool  chan *session
	inUse atomic.Int64
	gen   atomic.Uint64 // bumped when sessions were lost; older sessions and cache entries are dropped
	cache *cache
	value valueReader // one-call reads of key material (onecall.go)
	wrap  keyWrapper  // one-call wraps of new keys (onecall.go)

	kekMu  sync.RWMutex
	keks   map[int]kekPair // by version; replaced, never mutated
	cur    int             // current KEK version
	kekGen uint64          // the session generation the handles in keks are valid for

	closeOnce sync.Once
	closed    atomic.Bool
}

type session struct {
	h      pkcs11.SessionHandle
	gen    uint64
	stream bool // a stream's own session, closed when the stream ends
}

// Open loads the module, finds the token by label, logs in, detects the
// token's capabilities and finds (or on first start creates) the KEK.
func Open(ctx context.Context, cfg Config) (*HSM, error) {
	const op = "open"
	if cfg.Module == "" {
		return nil, errorf(op, KindBadInput, "no PKCS#11 module path configured")
	}
	if cfg.TokenLabel == "" {
		return nil, errorf(op, KindBadInput, "no token label configured")
	}
	if cfg.PIN == "" {
		return nil, errorf(op, KindBadInput, "no PIN configured")
	}
	if cfg.Sessions <= 0 {
		cfg.Sessions = 8
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 1024
	}
	if cfg.LabelPrefix == "" {
		cfg.LabelPrefix = "keyhold"
	}
	p := pkcs11.New(cfg.Module)
	if p == nil {
		return nil, errorf(op, KindUnavailable, "cannot load PKCS#11 module %q (missing file or not a PKCS#11 library)", cfg.Module)
	}
	if err := p.Initialize(); err != nil {
		p.Destroy()
		if c, ok := ckr(err); ok && c == pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			return nil, errorf(op, KindUnavailable, "module %q is already initialised in this process; close the other HSM first", cfg.Module)
		}
		return nil, wrapErr("initialize module", err)
	}
	h := &HSM{cfg: cfg, ctx: p, keks: map[int]kekPair{}, value: newValueReader(cfg.Module), wrap: newKeyWrapper(cfg.Module)}
	ok := false
	defer func() {
		if !ok {
			p.Finalize()
			p.Destroy()
		}
	}()
	if err := h.findSlot(); err != nil {
		return nil, err
	}
	h.pool = make(chan *session, cfg.Sessions)
	for range cfg.Sessions {
		h.pool <- nil // opened lazily
	}
	h.cache = newCache(cfg.CacheSize)
	// The first session logs in; a wrong PIN fails here, clearly.
	s, err := h.get(ctx)
	if err != nil {
		return nil, err
	}
	h.put(s)
	if err := h.detectCapabilities(ctx); err != nil {
		return nil, err
	}
	if err := h.loadKEKs(ctx); err != nil {
		return nil, err
	}
	ok = true
	return h, nil
}

func (h *HSM) findSlot() error {
	slots, err := h.ctx.GetSlotList(true)
	if err != nil {
		return wrapErr("list slots", err)
	}
	var found []uint
	for _, s := range slots {
		ti, err := h.ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if strings.TrimRight(ti.Label, " \x00") == h.cfg.TokenLabel {
			found = append(found, s)
			if len(found) == 1 {
				h.info = Info{
					TokenLabel:      h.cfg.TokenLabel,
					Manufacturer:    strings.TrimSpace(ti.ManufacturerID),
					Model:           strings.TrimSpace(ti.Model),
					SerialNumber:    strings.TrimSpace(ti.SerialNumber),
					FirmwareVersion: fmt.Sprintf("%d.%d", ti.FirmwareVersion.Major, ti.FirmwareVersion.Minor),
				}
			}
		}
	}
	switch len(found) {
	case 0:
		return errorf("open", KindNotFound, "no token labelled %q", h.cfg.TokenLabel)
	case 1:
	default:
		return errorf("open", KindBadInput, "%d tokens are labelled %q; labels must be unique", len(found), h.cfg.TokenLabel)
	}
	h.slot = found[0]
	if li, err := h.ctx.GetInfo(); err == nil {
		h.info.Library = strings.TrimSpace(li.LibraryDescription)
		h.info.LibraryVersion = fmt.Sprintf("%d.%d", li.LibraryVersion.Major, li.LibraryVersion.Minor)
	}
	return nil
}

// Info returns what the token and library say of themselves.
func (h *HSM) Info() Info { return h.info }

// Close destroys the cached key objects, closes the sessions and finalizes the module.
func (h *HSM) Close() error {
	var err error
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		h.cache.clear(nil)
		h.ctx.CloseAllSessions(h.slot)
		err = h.ctx.Finalize()
		h.ctx.Destroy()
	})
	if err != nil {
		return wrapErr("close", err)
	}
	return nil
}

// get takes a session from the pool, opening (and logging in) a new one for
// an empty slot or a slot whose session predates the last loss.
func (h *HSM) get(ctx context.Context) (*session, error) {
	if h.closed.Load() {
		return nil, errorf("session", KindUnavailable, "hsm is closed")
	}
	var s *session
	select {
	case s = <-h.pool:
		h.inUse.Add(1)
	case <-ctx.Done():
		return nil, &Error{Op: "hsm: session", Kind: KindUnavailable, Msg: "waiting for a session", Err: ctx.Err()}
	}
	g := h.gen.Load()
	if s != nil && s.gen == g {
		return s, nil
	}
	if s != nil {
		_ = h.ctx.CloseSession(s.h) // stale: may already be gone
	}
	sh, err := h.ctx.OpenSession(h.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		h.release(nil)
		return nil, wrapErr("open session", err)
	}
	if err := h.ctx.Login(sh, pkcs11.CKU_USER, h.cfg.PIN); err != nil {
		if c, ok := ckr(err); !ok || c != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			_ = h.ctx.CloseSession(sh)
			h.release(nil)
			if ok && c == pkcs11.CKR_PIN_INCORRECT {
				return nil, &Error{Op: "hsm: login", Kind: KindPermission, Msg: "the PIN is incorrect", Err: err}
			}
			return nil, wrapErr("login", err)
		}
	}
	return &session{h: sh, gen: g}, nil
}

func (h *HSM) put(s *session) { h.release(s) }

// release returns a pool slot (nil: the slot's session is to be reopened).
func (h *HSM) release(s *session) {
	h.inUse.Add(-1)
	h.pool <- s
}

// PoolStats says how many sessions the pool has and how many are in use.
func (h *HSM) PoolStats() (size, inUse int) { return h.cfg.Sessions, int(h.inUse.Load()) }

// lost records that sessions were lost: every older session is reopened on
// its next use and every cached key object is forgotten (the objects went
// with their sessions, and on some tokens handles are reused).
func (h *HSM) lost(s *session) {
	h.expire(s.gen)
	_ = h.ctx.CloseSession(s.h)
}

// expire ends session generation gen (if it is still the current one): the
// cached key objects are forgotten, and sessions, KEK handles and their
// session copies are renewed on their next use.
func (h *HSM) expire(gen uint64) {
	if h.gen.CompareAndSwap(gen, gen+1) {
		h.cache.clear(nil)
	}
}

// do runs fn with a session. If the session turns out to be lost, or a
// handle no longer names its object (the token logged out or was reset), the
// sessions, cached keys and KEK handles are renewed and fn runs once more.
func (h *HSM) do(ctx context.Context, op string, fn func(s *session) error) (err error) {
	if h.cfg.Observe != nil {
		start := time.Now()
		defer func() { h.cfg.Observe(op, time.Since(start), err) }()
	}
	for attempt := 0; ; attempt++ {
		s, err := h.get(ctx)
		if err != nil {
			return wrapErr(op, err)
		}
		err = h.call(s, fn)
		if err != nil && (sessionLost(err) || handleLost(err)) {
			h.lost(s)
			h.release(nil)
			if attempt == 0 {
				continue
			}
			return wrapErr(op, err)
		}
		h.put(s)
		return wrapErr(op, err)
	}
}

// call runs fn with s. If fn panics, the session (in an unknown state) is
// given up and its pool slot freed before the panic goes on up, so a bug
// cannot drain the pool.
func (h *HSM) call(s *session, fn func(s *session) error) error {
	done := false
	defer func() {
		if !done {
			h.lost(s)
			h.release(nil)
		}
	}()
	err := fn(s)
	done = true
	return err
}

// Random returns n random bytes from the token's generator.
func (h *HSM) Random(ctx context.Context, n int) ([]byte, error) {
	if n < 0 || n > 1<<20 {
		return nil, errorf("random", KindBadInput, "length %d out of range (0..1048576)", n)
	}
	if n == 0 {
		return []byte{}, nil
	}
	var out []byte
	err := h.do(ctx, "random", func(s *session) error {
		b, err := h.ctx.GenerateRandom(s.h, n)
		out = b
		return err
	})
	return out, err
}

// SeedRandom mixes seed into the token's generator. Tokens that do not
// accept seeding return KindUnsupported.
func (h *HSM) SeedRandom(ctx context.Context, seed []byte) error {
	if len(seed) == 0 {
		return errorf("seed random", KindBadInput, "empty seed")
	}
	return h.do(ctx, "seed random", func(s *session) error {
		err := h.ctx.SeedRandom(s.h, seed)
		if c, ok := ckr(err); ok && c == pkcs11.CKR_RANDOM_SEED_NOT_SUPPORTED {
			return errorf("seed random", KindUnsupported, "the token does not accept seeding")
		}
		return err
	})
}
