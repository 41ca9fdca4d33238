package kmip

import (
	"reflect"

	"github.com/ovh/kmip-go"
)

// sensitiveFields are the request payload fields the audit trail records
// only as HMACs: data to encrypt, decrypt, sign or MAC, and what comes
// with it.
var sensitiveFields = map[string]string{
	"Data":                                  "data",
	"DigestedData":                          "digested_data",
	"MACData":                               "mac_data",
	"SignatureData":                         "signature_data",
	"IVCounterNonce":                        "iv_counter_nonce",
	"AuthenticatedEncryptionAdditionalData": "aad",
	"AuthenticatedEncryptionTag":            "tag",
}

// requestSensitive returns the sensitive fields of a request payload, so
// that the request's audit event, written before the operation runs,
// carries their HMACs.
func requestSensitive(pl kmip.OperationPayload) map[string][]byte {
	out := map[string][]byte{}
	if pl == nil {
		return out
	}
	v := reflect.ValueOf(pl)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return out
	}
	for field, name := range sensitiveFields {
		f := v.Elem().FieldByName(field)
		if f.IsValid() && f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Uint8 && f.Len() > 0 {
			out[name] = f.Bytes()
		}
	}
	return out
}
