package hsm

import (
	"context"
	"fmt"

	"github.com/miekg/pkcs11"
)

// kekPair is one KEK version: the AES-256 wrapping key and the HMAC key that
// binds blobs wrapped under it to their ids. Both are token objects,
// sensitive, found by label, and leave the token only wrapped under a key
// that the security officer marked trusted (CKA_WRAP_WITH_TRUSTED; the KEK
// ceremony, kekmove.go), or never (Config.KEKNonExtractable).
//
// wrap and mac are the handles operations use: session copies of the token
// objects where the token allows copying, else the token objects themselves.
// On SoftHSM2 every use of a token object costs a check of its file (a wrap
// or an HMAC under a copy is 6–7 µs cheaper, measured by BenchmarkKEKUse);
// a copy keeps every attribute (sensitive, extractable only wrapped under a
// trusted key), lives only in this process's sessions and goes with them.
type kekPair struct {
	wrap, mac       pkcs11.ObjectHandle
	tokWrap, tokMac pkcs11.ObjectHandle // the token objects
}

func (h *HSM) kekLabel(v int) string { return fmt.Sprintf("%s-kek-v%d", h.cfg.LabelPrefix, v) }
func (h *HSM) macLabel(v int) string { return fmt.Sprintf("%s-mac-v%d", h.cfg.LabelPrefix, v) }

// findKEKs finds every KEK version by label (v1, v2, ... up to the first missing one).
func (h *HSM) findKEKs(s *session) (map[int]kekPair, int, error) {
	keks := map[int]kekPair{}
	cur := 0
	for v := 1; ; v++ {
		w, err := h.findOne(s, h.kekLabel(v), pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return nil, 0, err
		}
		if w == 0 {
			return keks, cur, nil
		}
		m, err := h.findOne(s, h.macLabel(v), pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return nil, 0, err
		}
		if m == 0 {
			return nil, 0, errorf("load keks", KindIntegrity, "KEK version %d has no MAC key %q in the token", v, h.macLabel(v))
		}
		keks[v] = kekPair{wrap: w, mac: m, tokWrap: w, tokMac: m}
		cur = v
	}
}

// kekExtractability is the part of a new KEK's or MAC key's template that
// says how it may leave the token.
func (h *HSM) kekExtractability() []*pkcs11.Attribute {
	if h.cfg.KEKNonExtractable {
		return []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false)}
	}
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, true),
	}
}

// loadKEKs finds the KEKs at start, creating version 1 if there is none
// (unless Config.NoCreateKEK).
func (h *HSM) loadKEKs(ctx context.Context) error {
	return h.do(ctx, "load keks", func(s *session) error {
		h.kekMu.Lock()
		defer h.kekMu.Unlock()
		keks, cur, err := h.findKEKs(s)
		if err != nil {
			return err
		}
		if cur == 0 && !h.cfg.NoCreateKEK {
			p, err := h.createKEK(s, 1)
			if err != nil {
				return err
			}
			keks[1], cur = p, 1
		}
		h.keks, h.cur, h.kekGen = h.sessionCopies(s, keks), cur, s.gen
		return nil
	})
}

// kekSet returns the KEK handles valid for the session's generation. Handles
// of token objects do not survive a logout on every token (SoftHSM2 drops
// them when the last session closes), so after a loss they are found again.
// The returned map is never mutated.
func (h *HSM) kekSet(s *session) (map[int]kekPair, int, error) {
	h.kekMu.RLock()
	if h.kekGen == s.gen {
		keks, cur := h.keks, h.cur
		h.kekMu.RUnlock()
		return keks, cur, nil
	}
	h.kekMu.RUnlock()
	h.kekMu.Lock()
	defer h.kekMu.Unlock()
	if h.kekGen != s.gen {
		keks, cur, err := h.findKEKs(s)
		if err != nil {
			return nil, 0, err
		}
		if cur < h.cur {
			return nil, 0, errorf("load keks", KindIntegrity, "KEK version %d is no longer in the token", h.cur)
		}
		if s.stream || s.gen != h.gen.Load() {
			// Copies made here would go with this session: a stream's
			// closes when the stream ends, a stale one on its next use.
			// The token objects serve this call; a pooled session of the
			// current generation makes the copies.
			return keks, cur, nil
		}
		h.keks, h.cur, h.kekGen = h.sessionCopies(s, keks), cur, s.gen
	}
	return h.keks, h.cur, nil
}

// sessionCopies returns keks with each pair's working handles replaced by
// session copies (sessionCopy).
func (h *HSM) sessionCopies(s *session, keks map[int]kekPair) map[int]kekPair {
	out := make(map[int]kekPair, len(keks))
	for v, p := range keks {
		out[v] = h.sessionCopy(s, p)
	}
	return out
}

// sessionCopy copies a KEK pair's token objects into session objects made in
// s, which stay valid while the session generation lasts (every session of
// a generation stays open until a loss starts the next one, and then the
// KEK handles are found and copied again). A token that refuses the copy
// (CKA_COPYABLE false, no C_CopyObject) is used through its token objects.
func (h *HSM) sessionCopy(s *session, p kekPair) kekPair {
	session := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)}
	w, err := h.ctx.CopyObject(s.h, p.tokWrap, session)
	if err != nil {
		return p
	}
	m, err := h.ctx.CopyObject(s.h, p.tokMac, session)
	if err != nil {
		_ = h.ctx.DestroyObject(s.h, w)
		return p
	}
	p.wrap, p.mac = w, m
	return p
}

// findOne returns the handle of the one object with the label and class, 0 if
// there is none, and an error if there are several.
func (h *HSM) findOne(s *session, label string, class uint) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
	}
	if err := h.ctx.FindObjectsInit(s.h, tmpl); err != nil {
		return 0, err
	}
	objs, _, err := h.ctx.FindObjects(s.h, 2)
	if ferr := h.ctx.FindObjectsFinal(s.h); err == nil {
		err = ferr
	}
	if err != nil {
		return 0, err
	}
	switch len(objs) {
	case 0:
		return 0, nil
	case 1:
		return objs[0], nil
	}
	return 0, errorf("find", KindIntegrity, "several token objects are labelled %q", label)
}

func (h *HSM) createKEK(s *session, v int) (kekPair, error) {
	var p kekPair
	err := func() error {
		id := []byte(h.kekLabel(v))
		w, err := h.ctx.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
			append(h.kekExtractability(),
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
				pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.kekLabel(v)),
				pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			))
		if err != nil {
			return err
		}
		m, err := h.ctx.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)},
			append(h.kekExtractability(),
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
				pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.macLabel(v)),
				pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(h.macLabel(v))),
			))
		if err != nil {
			_ = h.ctx.DestroyObject(s.h, w)
			return err
		}
		p = kekPair{wrap: w, mac: m, tokWrap: w, tokMac: m}
		return nil
	}()
	return p, err
}

// KEKVersion returns the version of the current KEK: new blobs are wrapped under it.
func (h *HSM) KEKVersion() int {
	h.kekMu.RLock()
	defer h.kekMu.RUnlock()
	return h.cur
}

// rotateKEKPause, set by tests, runs in RotateKEK between its refresh of
// the KEK set and its taking of the lock.
var rotateKEKPause func()

// RotateKEK creates a new KEK version and makes it current. Existing blobs
// stay readable under their version; Rewrap moves one to the current KEK.
func (h *HSM) RotateKEK(ctx context.Context) (int, error) {
	var v int
	err := h.do(ctx, "rotate kek", func(s *session) error {
		if _, _, err := h.kekSet(s); err != nil {
			return err
		}
		if rotateKEKPause != nil {
			rotateKEKPause()
		}
		h.kekMu.Lock()
		defer h.kekMu.Unlock()
		next := h.cur + 1
		p, err := h.createKEK(s, next)
		if err != nil {
			return err
		}
		keks := make(map[int]kekPair, len(h.keks)+1)
		for k, x := range h.keks {
			keks[k] = x
		}
		if h.kekGen == s.gen { // a session of the set's generation (a pooled one: h.do)
			p = h.sessionCopy(s, p)
		}
		keks[next] = p
		h.keks, h.cur, v = keks, next, next
		return nil
	})
	return v, err
}

func (h *HSM) kek(s *session, v int) (kekPair, error) {
	keks, _, err := h.kekSet(s)
	if err != nil {
		return kekPair{}, err
	}
	p, ok := keks[v]
	if !ok {
		return kekPair{}, errorf("kek", KindNotFound, "the blob is wrapped under KEK version %d, which this token does not hold", v)
	}
	return p, nil
}

func (h *HSM) currentKEK(s *session) (int, kekPair, error) {
	keks, cur, err := h.kekSet(s)
	if err != nil {
		return 0, kekPair{}, err
	}
	if cur == 0 {
		return 0, kekPair{}, errorf("kek", KindNotFound, "the token holds no KEK yet; receive the cluster's KEKs (keyhold operator kek-import)")
	}
	return cur, keks[cur], nil
}
