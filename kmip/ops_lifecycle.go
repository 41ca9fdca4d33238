package kmip

import (
	"context"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// The operations that move an object through the states of KMIP 1.4 §3.22:
//
//	Pre-Active  --Activate-->             Active
//	Pre-Active  --Revoke (compromise)-->  Compromised
//	Pre-Active  --Destroy-->              Destroyed
//	Active      --Revoke (compromise)-->  Compromised
//	Active      --Revoke (other)-->       Deactivated
//	Deactivated --Revoke (compromise)-->  Compromised
//	Deactivated --Destroy-->              Destroyed
//	Compromised --Destroy-->              Destroyed Compromised
//	Destroyed   --Revoke (compromise)-->  Destroyed Compromised
//
// Dates move Pre-Active to Active and Active to Deactivated (object.refresh).
// Anything else is refused with Permission Denied: an Active key must be
// revoked before it can be destroyed.

func stateName(s kmip.State) string { return ttlv.EnumStr(s) }

// activate makes a Pre-Active object Active now (KMIP 1.4 §4.19).
func activate(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.ActivateRequestPayload)
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	now := c.b.now.Truncate(time.Second)
	_, err = c.modify(ctx, id, func(o *object) error {
		if s := o.state(); s != kmip.StatePreActive {
			return permissionDenied("object %s is %s; only a Pre-Active object can be activated", id, stateName(s))
		}
		o.set(kmip.AttributeNameActivationDate, now)
		o.setState(kmip.StateActive, now)
		o.refresh(c.b.now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.ActivateResponsePayload{UniqueIdentifier: id}, nil
}

// revoke revokes an object (KMIP 1.4 §4.20): a key or CA compromise makes it
// Compromised (Destroyed Compromised if destroyed), with the Compromise
// Date now and the Compromise Occurrence Date from the request (else the
// Initial Date); another reason deactivates an Active object now.
func revoke(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.RevokeRequestPayload)
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	code := req.RevocationReason.RevocationReasonCode
	if err := revocationReasonRefusal(code); err != nil {
		return nil, err
	}
	compromise := code == kmip.RevocationReasonCodeKeyCompromise || code == kmip.RevocationReasonCodeCACompromise
	now := c.b.now.Truncate(time.Second)
	_, err = c.modify(ctx, id, func(o *object) error {
		s := o.state()
		switch {
		case compromise && (s == kmip.StatePreActive || s == kmip.StateActive || s == kmip.StateDeactivated):
			o.setState(kmip.StateCompromised, now)
		case compromise && s == kmip.StateDestroyed:
			o.setState(kmip.StateDestroyedCompromised, now)
		case !compromise && s == kmip.StateActive:
			o.set(kmip.AttributeNameDeactivationDate, now)
			o.setState(kmip.StateDeactivated, now)
		default:
			return permissionDenied("object %s is %s and cannot be revoked for %s", id, stateName(s), ttlv.EnumStr(code))
		}
		if compromise {
			o.set(kmip.AttributeNameCompromiseDate, now)
			occurred, _ := o.date(kmip.AttributeNameInitialDate)
			if req.CompromiseOccurrenceDate != nil {
				occurred = req.CompromiseOccurrenceDate.UTC().Truncate(time.Second)
			}
			o.set(kmip.AttributeNameCompromiseOccurrenceDate, occurred)
		}
		o.set(kmip.AttributeNameRevocationReason, req.RevocationReason)
		o.refresh(c.b.now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.RevokeResponsePayload{UniqueIdentifier: id}, nil
}

// revocationReasonRefusal refuses a Revocation Reason Code this server does
// not recognise with Invalid Field (KMIP 1.4 §11.21, "Revocation Reason is
// not recognized"). KMIP 1.x defines codes 1 to 7 (Unspecified to Privilege
// Withdrawn, §9.1.3.2.19); 0x80000000 to 0x8FFFFFFF are extensions, which
// only parties with a pre-agreed understanding of them can use (§9.1.3,
// §9.1.3.2), and this server defines none; every other value is reserved
// for future KMIP versions.
func revocationReasonRefusal(code kmip.RevocationReasonCode) error {
	switch {
	case code == 0:
		return invalidField("a Revocation Reason needs a Revocation Reason Code")
	case code >= kmip.RevocationReasonCodeUnspecified && code <= kmip.RevocationReasonCodePrivilegeWithdrawn:
		return nil
	case code>>28 == 0x8:
		return invalidField("Revocation Reason Code 0x%08X is in the extension range (0x80000000 to 0x8FFFFFFF), and this server defines no extension codes: use one of KMIP's, 0x00000001 (Unspecified) to 0x00000007 (Privilege Withdrawn)", uint32(code))
	}
	return invalidField("Revocation Reason Code 0x%08X is reserved for future KMIP versions: use one of KMIP's, 0x00000001 (Unspecified) to 0x00000007 (Privilege Withdrawn)", uint32(code))
}

// destroy removes an object's value (KMIP 1.4 §4.21); the object and its
// attributes stay, with the Destroy Date set. Only Pre-Active, Deactivated
// and Compromised objects can be destroyed.
func destroy(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.DestroyRequestPayload)
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	now := c.b.now.Truncate(time.Second)
	_, err = c.modify(ctx, id, func(o *object) error {
		switch s := o.state(); s {
		case kmip.StatePreActive, kmip.StateDeactivated:
			o.setState(kmip.StateDestroyed, now)
		case kmip.StateCompromised:
			o.setState(kmip.StateDestroyedCompromised, now)
		default:
			return permissionDenied("object %s is %s; only Pre-Active, Deactivated or Compromised objects can be destroyed", id, stateName(s))
		}
		o.set(kmip.AttributeNameDestroyDate, now)
		o.rec.Value = nil
		o.rec.DueAt = time.Time{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.DestroyResponsePayload{UniqueIdentifier: id}, nil
}
