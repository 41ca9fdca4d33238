package kmip

import (
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/ovh/kmip-go"
)

// opNames are the operations a role can grant, by Vault's operation_* names.
// Hash, which Vault's engine does not have, needs no key and has no flag:
// roles with operation_all may do it.
var opNames = map[kmip.Operation]string{
	kmip.OperationActivate:         "activate",
	kmip.OperationAddAttribute:     "add_attribute",
	kmip.OperationCreate:           "create",
	kmip.OperationCreateKeyPair:    "create_keypair",
	kmip.OperationDecrypt:          "decrypt",
	kmip.OperationDeleteAttribute:  "delete_attribute",
	kmip.OperationDestroy:          "destroy",
	kmip.OperationDiscoverVersions: "discover_versions",
	kmip.OperationEncrypt:          "encrypt",
	kmip.OperationGet:              "get",
	kmip.OperationGetAttributeList: "get_attribute_list",
	kmip.OperationGetAttributes:    "get_attributes",
	kmip.OperationImport:           "import",
	kmip.OperationLocate:           "locate",
	kmip.OperationMAC:              "mac",
	kmip.OperationMACVerify:        "mac_verify",
	kmip.OperationModifyAttribute:  "modify_attribute",
	kmip.OperationQuery:            "query",
	kmip.OperationRegister:         "register",
	kmip.OperationReKey:            "rekey",
	kmip.OperationReKeyKeyPair:     "rekey_keypair",
	kmip.OperationRevoke:           "revoke",
	kmip.OperationRNGRetrieve:      "rng_retrieve",
	kmip.OperationRNGSeed:          "rng_seed",
	kmip.OperationSign:             "sign",
	kmip.OperationSignatureVerify:  "signature_verify",
}

// OperationNames lists the grantable operations, sorted: the API offers an
// operation_<name> flag for each, besides operation_all and operation_none.
func OperationNames() []string {
	out := make([]string, 0, len(opNames))
	for _, n := range opNames {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Role is what the clients of a role may do.
type Role struct {
	All        bool     `json:"all"`        // every operation, now and later
	Operations []string `json:"operations"` // sorted operation names (empty with All)
	// The defaults of credentials generated for the role (zero: the mount's).
	TLSClientKeyType string        `json:"tls_client_key_type,omitempty"`
	TLSClientKeyBits int           `json:"tls_client_key_bits,omitempty"`
	TLSClientTTL     time.Duration `json:"tls_client_ttl,omitempty"`
	// RNGSeedMaxBytes caps how much of an RNG Seed the token is given (nil:
	// all of it; 0: seeds are acknowledged and not used). KMIP lets a
	// server take part of a seed or none, and say so in its answer.
	RNGSeedMaxBytes *int `json:"rng_seed_max_bytes,omitempty"`
}

// allows reports whether the role grants an operation.
func (r *Role) allows(op kmip.Operation) bool {
	if r == nil {
		return false
	}
	if r.All {
		return true
	}
	name, ok := opNames[op]
	return ok && slices.Contains(r.Operations, name)
}

// RoleInput is a write of a role. Ops holds the operation_* flags the
// request set, by name without the prefix ("all" and "none" included); if
// it holds any, the role's operations are exactly those set true.
type RoleInput struct {
	Ops              map[string]bool
	TLSClientKeyType *string
	TLSClientKeyBits *int
	TLSClientTTL     *time.Duration
	RNGSeedMaxBytes  *int // negative: no cap
}

// apply merges a write into r.
func (r *Role) apply(in RoleInput) error {
	oldTyp, oldBits := r.TLSClientKeyType, r.TLSClientKeyBits
	if len(in.Ops) > 0 {
		all, none := in.Ops["all"], in.Ops["none"]
		var ops []string
		others := 0 // operation_* fields other than all and none, true or false
		for name, on := range in.Ops {
			if name == "all" || name == "none" {
				continue
			}
			if !slices.Contains(OperationNames(), name) {
				return fault.New(fault.BadInput, "unknown operation operation_%s", name)
			}
			others++
			if on {
				ops = append(ops, name)
			}
		}
		switch {
		case all && none:
			return fault.New(fault.BadInput, "operation_all and operation_none exclude each other")
		case (all || none) && others > 0:
			// operation_all with operation_destroy=false is not "all but
			// destroy": refused, not granted whole.
			return fault.New(fault.BadInput, "operation_all and operation_none cannot be combined with other operation_* fields")
		}
		sort.Strings(ops)
		r.All, r.Operations = all, ops
		if r.Operations == nil {
			r.Operations = []string{}
		}
	}
	if in.TLSClientKeyType != nil {
		r.TLSClientKeyType = *in.TLSClientKeyType
	}
	if in.TLSClientKeyBits != nil {
		r.TLSClientKeyBits = *in.TLSClientKeyBits
	}
	if in.TLSClientTTL != nil {
		r.TLSClientTTL = *in.TLSClientTTL
	}
	if in.RNGSeedMaxBytes != nil {
		r.RNGSeedMaxBytes = nil
		if n := *in.RNGSeedMaxBytes; n >= 0 {
			r.RNGSeedMaxBytes = &n
		}
	}
	if r.TLSClientKeyType != "" || r.TLSClientKeyBits != 0 {
		typ, bits := r.TLSClientKeyType, r.TLSClientKeyBits
		if typ == "" || bits == 0 {
			return fault.New(fault.BadInput, "tls_client_key_type and tls_client_key_bits are set together")
		}
		// Checked when changed: a size stored before it was refused (ec
		// 224) does not block writes of other fields, nor the record
		// written back whole; credentials refuse it.
		if typ != oldTyp || bits != oldBits {
			if err := checkKey("tls_client_key", typ, bits); err != nil {
				return err
			}
		}
	}
	if r.TLSClientTTL != 0 && r.TLSClientTTL < time.Minute {
		return fault.New(fault.BadInput, "tls_client_ttl must be at least 1m")
	}
	return nil
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// checkName checks a scope or role name.
func checkName(kind, name string) error {
	if !nameRe.MatchString(name) {
		return fault.New(fault.BadInput, "invalid %s name %q: 1 to 128 letters, digits, '.', '_' and '-', starting with a letter or digit", kind, name)
	}
	return nil
}
