package kmip

import (
	"context"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// What the server checks before a key is used for a cryptographic
// operation (KMIP 1.4 §3.19, §3.21, §3.22, §3.25, §3.26):
//
//   - the state: an Active key may protect (encrypt, sign, MAC) and process
//     (decrypt, verify, check a MAC); a Deactivated or Compromised one may
//     only process; a Pre-Active or Destroyed one may do neither;
//   - the dates: nothing is protected after the Protect Stop Date, nothing
//     processed before the Process Start Date;
//   - the Cryptographic Usage Mask: it must have the operation's bit;
//   - the Usage Limits: the count, in bytes or objects, goes down with each
//     use, durably and before the operation runs (a use that then fails is
//     spent), and a use it does not cover is refused.
//
// Every refusal is Permission Denied.

// purpose is what an operation does with a key.
type purpose struct {
	name    string
	mask    kmip.CryptographicUsageMask
	protect bool
}

var (
	forEncrypt   = purpose{"encrypt", kmip.CryptographicUsageEncrypt, true}
	forDecrypt   = purpose{"decrypt", kmip.CryptographicUsageDecrypt, false}
	forSign      = purpose{"sign", kmip.CryptographicUsageSign, true}
	forVerify    = purpose{"verify signatures", kmip.CryptographicUsageVerify, false}
	forMAC       = purpose{"generate MACs", kmip.CryptographicUsageMACGenerate, true}
	forMACVerify = purpose{"verify MACs", kmip.CryptographicUsageMACVerify, false}
)

// mayUse checks an object's state, dates and usage mask for a purpose at
// now.
func mayUse(o *object, p purpose, now time.Time) error {
	switch s := o.state(); {
	case s == kmip.StateActive:
	case (s == kmip.StateDeactivated || s == kmip.StateCompromised) && !p.protect:
	default:
		return permissionDenied("object %s is %s and cannot be used to %s", o.id(), stateName(s), p.name)
	}
	if d, ok := o.date(kmip.AttributeNameProtectStopDate); ok && p.protect && !now.Before(d) {
		return permissionDenied("object %s is past its Protect Stop Date and cannot be used to %s", o.id(), p.name)
	}
	if d, ok := o.date(kmip.AttributeNameProcessStartDate); ok && !p.protect && now.Before(d) {
		return permissionDenied("object %s is before its Process Start Date and cannot be used to %s", o.id(), p.name)
	}
	mv, _ := o.get(kmip.AttributeNameCryptographicUsageMask)
	if mask, _ := mv.(kmip.CryptographicUsageMask); mask&p.mask == 0 {
		return permissionDenied("the Cryptographic Usage Mask of object %s does not allow it to %s", o.id(), p.name)
	}
	return nil
}

// useKey loads an object of the caller's scope for an operation that
// processes n bytes, checks that it may be used for p now, and counts the
// use against its Usage Limits.
func (c *call) useKey(ctx context.Context, id string, p purpose, n int) (*object, error) {
	o, err := c.read(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := mayUse(o, p, c.b.now); err != nil {
		return nil, err
	}
	if _, limited := o.get(kmip.AttributeNameUsageLimits); !limited {
		return o, nil
	}
	// Counted in a durable write, with the checks made again on the stored
	// object, so that concurrent uses cannot overdraw the limit.
	return c.modify(ctx, id, func(o *object) error {
		if err := mayUse(o, p, c.b.now); err != nil {
			return err
		}
		return spend(o, n, c.b.now)
	})
}

// spend takes a use of n bytes off an object's Usage Limits Count.
func spend(o *object, n int, now time.Time) error {
	v, ok := o.get(kmip.AttributeNameUsageLimits)
	if !ok {
		return nil
	}
	ul, _ := v.(kmip.UsageLimits)
	count := ul.UsageLimitsTotal
	if ul.UsageLimitsCount != nil {
		count = *ul.UsageLimitsCount
	}
	units := int64(1)
	if ul.UsageLimitsUnit == kmip.UsageLimitsUnitByte {
		units = int64(n)
	}
	if count < units {
		return permissionDenied("the Usage Limits of object %s are exhausted (%d %s left, %d needed)", o.id(), count, ttlv.EnumStr(ul.UsageLimitsUnit), units)
	}
	count -= units
	ul.UsageLimitsCount = &count
	o.set(kmip.AttributeNameUsageLimits, ul)
	o.touch(now)
	return nil
}

// usageLimits is the Usage Limits a client sets, as stored: the Count is
// the server's (KMIP 1.4 §3.21): the Total for a new limit, and for a
// changed one the new Total less what was already used, so that changing
// the limit does not give back what was spent.
func usageLimits(o *object, ul kmip.UsageLimits) (kmip.UsageLimits, error) {
	if ul.UsageLimitsTotal <= 0 {
		return ul, invalidField("the Usage Limits Total must be positive")
	}
	if ul.UsageLimitsUnit != kmip.UsageLimitsUnitByte && ul.UsageLimitsUnit != kmip.UsageLimitsUnitObject {
		return ul, invalidField("the Usage Limits Unit must be Byte or Object")
	}
	count := ul.UsageLimitsTotal
	if v, ok := o.get(kmip.AttributeNameUsageLimits); ok {
		if old, ok := v.(kmip.UsageLimits); ok && old.UsageLimitsCount != nil {
			if old.UsageLimitsUnit != ul.UsageLimitsUnit {
				return ul, invalidField("the Usage Limits Unit of object %s cannot change", o.id())
			}
			count = max(0, ul.UsageLimitsTotal-(old.UsageLimitsTotal-*old.UsageLimitsCount))
		}
	}
	ul.UsageLimitsCount = &count
	return ul, nil
}
