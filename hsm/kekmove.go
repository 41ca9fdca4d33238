package hsm

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"math/big"

	"github.com/miekg/pkcs11"
)

// The KEK ceremony moves the KEKs (and their MAC keys) of one token into
// another without them ever being in the clear, for nodes whose HSMs the
// vendor cannot clone (DESIGN §3; verified on SoftHSM2 2.6.1):
//
//  1. The receiving token makes an RSA-3072 transport key pair; its
//     private key (a token object, sensitive, never extractable) may only
//     unwrap. NewKEKTransportKey returns the public key.
//  2. On the sending token the security officer (SO PIN) imports that public
//     key as a token object with CKA_TRUSTED; a user cannot set it. KEKs
//     carry CKA_WRAP_WITH_TRUSTED, so they can be wrapped under that key and
//     under no other (an untrusted key gets CKR_KEY_NOT_WRAPPABLE). The user
//     wraps every KEK version and MAC key with RSA-OAEP (SHA-1: SoftHSM2's
//     only OAEP hash), adds a proof blob made under the current KEK, and the
//     trusted key is destroyed. ExportKEKs does all of this.
//  3. The receiving token unwraps them into token objects with the same
//     labels and the same attributes, opens the proof blob (its MAC and its
//     key), and destroys the transport key pair: ImportKEKs.
//
// The bundle holds nothing that anyone without the receiving token's
// transport private key can use.

// KEKBundleFormat names the bundle's layout.
const KEKBundleFormat = "keyhold-kek-bundle-v1"

// KEKBundle is what the sending token gives the receiving one.
type KEKBundle struct {
	Format string `json:"format"`
	// TransportKey is the SHA-256 of the transport public key (PKIX DER).
	TransportKey string       `json:"transport_key_sha256"`
	LabelPrefix  string       `json:"label_prefix"`
	Current      int          `json:"current_version"`
	Versions     []WrappedKEK `json:"versions"`
	// ProofID and Proof are a blob made under the current KEK: the receiver
	// opens it (MAC and unwrap) to show it holds the same keys.
	ProofID string `json:"proof_id"`
	Proof   []byte `json:"proof"`
}

// WrappedKEK is one KEK version, wrapped under the transport key.
type WrappedKEK struct {
	Version int    `json:"version"`
	KEK     []byte `json:"kek"`
	MAC     []byte `json:"mac"`
}

func (h *HSM) transportLabel() string { return h.cfg.LabelPrefix + "-kek-transport" }
func (h *HSM) trustedLabel() string   { return h.cfg.LabelPrefix + "-kek-transport-trusted" }

// transportOAEP is RSA-OAEP with SHA-1 and MGF1-SHA-1, which every token
// that has OAEP can do.
func transportOAEP() *pkcs11.Mechanism {
	return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
		pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil))
}

// NewKEKTransportKey makes (or makes again, replacing the old one) the
// receiving token's transport key pair and returns its public key.
func (h *HSM) NewKEKTransportKey(ctx context.Context) (*rsa.PublicKey, error) {
	const op = "kek transport key"
	var pub *rsa.PublicKey
	err := h.do(ctx, op, func(s *session) error {
		if err := h.destroyLabelled(s, h.transportLabel(), pkcs11.CKO_PRIVATE_KEY); err != nil {
			return err
		}
		pubH, privH, err := h.ctx.GenerateKeyPair(s.h,
			[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, 3072),
				pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
				pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.transportLabel()),
				pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(h.transportLabel())),
			})
		if err != nil {
			return err
		}
		defer h.ctx.DestroyObject(s.h, pubH)
		attrs, err := h.ctx.GetAttributeValue(s.h, privH, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return err
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(attrs[0].Value), E: int(new(big.Int).SetBytes(attrs[1].Value).Int64())}
		return nil
	})
	return pub, err
}

// destroyLabelled destroys every token object of a class with the label.
func (h *HSM) destroyLabelled(s *session, label string, class uint) error {
	for {
		obj, err := h.findOne(s, label, class)
		if err != nil && KindOf(err) != KindIntegrity {
			return err
		}
		if obj == 0 && err == nil {
			return nil
		}
		if obj == 0 { // several: find them one by one
			if err := h.ctx.FindObjectsInit(s.h, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			}); err != nil {
				return err
			}
			objs, _, ferr := h.ctx.FindObjects(s.h, 1)
			h.ctx.FindObjectsFinal(s.h)
			if ferr != nil || len(objs) == 0 {
				return ferr
			}
			obj = objs[0]
		}
		if err := h.ctx.DestroyObject(s.h, obj); err != nil {
			return err
		}
	}
}

// TransportKeyID is the SHA-256 of a transport public key's PKIX DER, in
// hex: what an operator compares between the two sides.
func TransportKeyID(pub *rsa.PublicKey) string {
	if pub == nil || pub.N == nil {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// TrustTransportKey is the security officer's step on the sending token:
// it imports the receiving token's transport public key as a trusted
// wrapping key. It runs on its own (no user may be logged in to the token
// in this process), before ExportKEKs.
func TrustTransportKey(ctx context.Context, cfg Config, soPIN string, pub *rsa.PublicKey) error {
	const op = "trust transport key"
	if pub == nil || pub.N == nil || pub.N.BitLen() < 2048 {
		return errorf(op, KindBadInput, "the transport key must be RSA of at least 2048 bits")
	}
	if soPIN == "" {
		return errorf(op, KindBadInput, "no SO PIN")
	}
	if cfg.LabelPrefix == "" {
		cfg.LabelPrefix = "keyhold"
	}
	return withSOSession(cfg, soPIN, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		h := &HSM{cfg: cfg, ctx: p}
		s := &session{h: sh}
		if err := h.destroyLabelled(s, h.trustedLabel(), pkcs11.CKO_PUBLIC_KEY); err != nil {
			return wrapErr(op, err)
		}
		tmpl := rsaPublicTemplate(pub)
		for i, a := range tmpl {
			if a.Type == pkcs11.CKA_TOKEN {
				tmpl[i] = pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)
			}
		}
		tmpl = append(tmpl,
			pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.trustedLabel()),
			pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(TransportKeyID(pub))))
		if _, err := p.CreateObject(sh, tmpl); err != nil {
			return wrapErr(op, err)
		}
		return nil
	})
}

// UntrustTransportKey is the security officer's last step on the sending
// token: the trusted key goes, so nothing more can be wrapped under it.
func UntrustTransportKey(ctx context.Context, cfg Config, soPIN string) error {
	if cfg.LabelPrefix == "" {
		cfg.LabelPrefix = "keyhold"
	}
	return withSOSession(cfg, soPIN, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		h := &HSM{cfg: cfg, ctx: p}
		return wrapErr("untrust transport key", h.destroyLabelled(&session{h: sh}, h.trustedLabel(), pkcs11.CKO_PUBLIC_KEY))
	})
}

// withSOSession loads the module, opens a read-write session on the token
// logged in as the security officer, runs fn and finalizes the module.
func withSOSession(cfg Config, soPIN string, fn func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error) error {
	const op = "so session"
	p := pkcs11.New(cfg.Module)
	if p == nil {
		return errorf(op, KindUnavailable, "cannot load PKCS#11 module %q", cfg.Module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		return wrapErr("initialize module", err)
	}
	defer p.Finalize()
	h := &HSM{cfg: cfg, ctx: p}
	if err := h.findSlot(); err != nil {
		return err
	}
	sh, err := p.OpenSession(h.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return wrapErr("open session", err)
	}
	defer p.CloseSession(sh)
	if err := p.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		if c, ok := ckr(err); ok && c == pkcs11.CKR_PIN_INCORRECT {
			return &Error{Op: "hsm: so login", Kind: KindPermission, Msg: "the SO PIN is incorrect", Err: err}
		}
		return wrapErr("so login", err)
	}
	defer p.Logout(sh)
	return fn(p, sh)
}

// ExportKEKs wraps every KEK version and MAC key under the transport key
// that the security officer trusted (TrustTransportKey), with a proof blob.
func (h *HSM) ExportKEKs(ctx context.Context, transport *rsa.PublicKey) (*KEKBundle, error) {
	const op = "export keks"
	id := TransportKeyID(transport)
	if id == "" {
		return nil, errorf(op, KindBadInput, "no transport key")
	}
	b := &KEKBundle{Format: KEKBundleFormat, TransportKey: id, LabelPrefix: h.cfg.LabelPrefix}
	err := h.do(ctx, op, func(s *session) error {
		trusted, err := h.findOne(s, h.trustedLabel(), pkcs11.CKO_PUBLIC_KEY)
		if err != nil {
			return err
		}
		if trusted == 0 {
			return errorf(op, KindNotFound, "no trusted transport key in the token: the security officer must import it first (kek-export does)")
		}
		got, err := h.ctx.GetAttributeValue(s.h, trusted, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, nil)})
		if err != nil {
			return err
		}
		if string(got[0].Value) != id {
			return errorf(op, KindBadInput, "the trusted transport key in the token is not the one given")
		}
		keks, cur, err := h.kekSet(s)
		if err != nil {
			return err
		}
		if cur == 0 {
			return errorf(op, KindNotFound, "the token holds no KEK to export")
		}
		for v := 1; v <= cur; v++ {
			p, ok := keks[v]
			if !ok {
				return errorf(op, KindIntegrity, "KEK version %d is missing", v)
			}
			w := WrappedKEK{Version: v}
			if w.KEK, err = h.wrapForTransport(s, trusted, p.tokWrap, h.kekLabel(v)); err != nil {
				return err
			}
			if w.MAC, err = h.wrapForTransport(s, trusted, p.tokMac, h.macLabel(v)); err != nil {
				return err
			}
			b.Versions = append(b.Versions, w)
		}
		b.Current = cur
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.ProofID = "keyhold-kek-proof:" + id[:16]
	proof, err := h.Generate(ctx, GenerateRequest{ID: b.ProofID, Type: AES256})
	if err != nil {
		return nil, err
	}
	b.Proof = proof
	return b, nil
}

// wrapForTransport wraps one KEK or MAC key under the trusted transport key.
func (h *HSM) wrapForTransport(s *session, trusted, key pkcs11.ObjectHandle, label string) ([]byte, error) {
	out, err := h.ctx.WrapKey(s.h, []*pkcs11.Mechanism{transportOAEP()}, trusted, key)
	if c, ok := ckr(err); ok {
		switch c {
		case pkcs11.CKR_KEY_UNEXTRACTABLE:
			return nil, errorf("export keks", KindUnsupported, "%s was created non-extractable: it cannot leave this token (clone the HSM with the vendor's tools)", label)
		case pkcs11.CKR_KEY_NOT_WRAPPABLE:
			return nil, errorf("export keks", KindPermission, "%s may only be wrapped under a trusted key", label)
		}
	}
	return out, err
}

// ImportKEKs unwraps a bundle into the token with the transport private
// key, checks the proof blob and destroys the transport key pair. A token
// that holds KEKs already is refused, unless it holds every version of the
// bundle and the proof opens with them (the import was done before).
func (h *HSM) ImportKEKs(ctx context.Context, b *KEKBundle) error {
	const op = "import keks"
	if b == nil || b.Format != KEKBundleFormat || b.Current < 1 || len(b.Versions) != b.Current {
		return errorf(op, KindBadInput, "not a %s bundle", KEKBundleFormat)
	}
	for i, w := range b.Versions {
		if w.Version != i+1 || len(w.KEK) == 0 || len(w.MAC) == 0 {
			return errorf(op, KindBadInput, "the bundle's versions are not 1 to %d, each with a KEK and a MAC key", b.Current)
		}
	}
	if b.LabelPrefix != h.cfg.LabelPrefix {
		return errorf(op, KindBadInput, "the bundle's KEKs are labelled %q, this node's %q", b.LabelPrefix, h.cfg.LabelPrefix)
	}
	err := h.do(ctx, op, func(s *session) error {
		priv, err := h.findOne(s, h.transportLabel(), pkcs11.CKO_PRIVATE_KEY)
		if err != nil {
			return err
		}
		if priv == 0 {
			return errorf(op, KindNotFound, "no transport key in this token: make one first (kek-transport-key)")
		}
		if err := h.checkTransportID(s, priv, b.TransportKey); err != nil {
			return err
		}
		_, cur, err := h.findKEKs(s)
		if err != nil {
			return err
		}
		if cur == b.Current {
			return nil // imported before: the proof below says whether it is the same
		}
		if cur != 0 {
			return errorf(op, KindBadInput, "the token holds KEKs of its own (version %d); a node receiving the cluster's KEKs starts from a token without any", cur)
		}
		for _, w := range b.Versions {
			if err := h.unwrapKEK(s, priv, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := h.reloadKEKs(ctx); err != nil {
		return err
	}
	if h.KEKVersion() != b.Current {
		return errorf(op, KindIntegrity, "after the import the token's current KEK is version %d, the bundle's %d", h.KEKVersion(), b.Current)
	}
	if _, err := h.Inspect(ctx, Key{ID: b.ProofID, Blob: b.Proof}); err != nil {
		return &Error{Op: "hsm: " + op, Kind: KindIntegrity, Msg: "the proof blob does not open with the imported KEK: the token holds other keys under those labels", Err: err}
	}
	return h.do(ctx, op, func(s *session) error {
		return h.destroyLabelled(s, h.transportLabel(), pkcs11.CKO_PRIVATE_KEY)
	})
}

// checkTransportID compares the token's transport key with the bundle's.
func (h *HSM) checkTransportID(s *session, priv pkcs11.ObjectHandle, want string) error {
	attrs, err := h.ctx.GetAttributeValue(s.h, priv, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
	})
	if err != nil {
		return err
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(attrs[0].Value), E: int(new(big.Int).SetBytes(attrs[1].Value).Int64())}
	if TransportKeyID(pub) != want {
		return errorf("import keks", KindBadInput, "the bundle was made for another transport key (%s…), not this token's (%s…)", short(want), short(TransportKeyID(pub)))
	}
	return nil
}

func short(s string) string { return s[:min(len(s), 12)] }

// unwrapKEK unwraps one version's KEK and MAC key as token objects with
// the labels and attributes createKEK gives.
func (h *HSM) unwrapKEK(s *session, priv pkcs11.ObjectHandle, w WrappedKEK) error {
	common := append(h.kekExtractability(),
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true))
	kek := append(append([]*pkcs11.Attribute{}, common...),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.kekLabel(w.Version)),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(h.kekLabel(w.Version))))
	mac := append(append([]*pkcs11.Attribute{}, common...),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.macLabel(w.Version)),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(h.macLabel(w.Version))))
	k, err := h.ctx.UnwrapKey(s.h, []*pkcs11.Mechanism{transportOAEP()}, priv, w.KEK, kek)
	if err != nil {
		return err
	}
	if _, err := h.ctx.UnwrapKey(s.h, []*pkcs11.Mechanism{transportOAEP()}, priv, w.MAC, mac); err != nil {
		_ = h.ctx.DestroyObject(s.h, k)
		return err
	}
	return nil
}

// reloadKEKs finds the token's KEKs again (after an import).
func (h *HSM) reloadKEKs(ctx context.Context) error {
	return h.do(ctx, "load keks", func(s *session) error {
		keks, cur, err := h.findKEKs(s)
		if err != nil {
			return err
		}
		// The copies of the old set stay until their sessions close: a
		// request may be using them now.
		copies := h.sessionCopies(s, keks)
		h.kekMu.Lock()
		h.keks, h.cur, h.kekGen = copies, cur, s.gen
		h.kekMu.Unlock()
		return nil
	})
}

// ParseTransportKey reads a transport public key from PEM (PKIX).
func ParseTransportKey(pemText []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(pemText)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errorf("transport key", KindBadInput, "not a PEM PUBLIC KEY")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, errorf("transport key", KindBadInput, "not a PKIX public key")
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errorf("transport key", KindBadInput, "not an RSA public key")
	}
	return rk, nil
}
