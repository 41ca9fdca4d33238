package wire

import (
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// Payloads kmip-go v0.8.1 does not have (MAC, MAC Verify, Hash, RNG
// Retrieve, RNG Seed: KMIP 1.2 §4.33–4.37), and answers whose Data must be
// present even when empty (an AES-GCM encryption of nothing is still an
// answer with a Data item), which kmip-go's types omit. They are decoded
// here by operation (localRequests) rather than registered in kmip-go's
// global registry.

// MACRequestPayload is the request of MAC (KMIP 1.4 §4.33).
type MACRequestPayload struct {
	UniqueIdentifier        string `ttlv:",omitempty"`
	CryptographicParameters *kmip.CryptographicParameters
	Data                    []byte `ttlv:",omitempty"`
	CorrelationValue        []byte `ttlv:",omitempty,version=v1.3.."`
	InitIndicator           *bool  `ttlv:",version=v1.3.."`
	FinalIndicator          *bool  `ttlv:",version=v1.3.."`
}

func (*MACRequestPayload) Operation() kmip.Operation { return kmip.OperationMAC }

// MACResponsePayload is the answer of MAC.
type MACResponsePayload struct {
	UniqueIdentifier string
	MACData          []byte `ttlv:",omitempty"`
	CorrelationValue []byte `ttlv:",omitempty,version=v1.3.."`
}

func (*MACResponsePayload) Operation() kmip.Operation { return kmip.OperationMAC }

// MACVerifyRequestPayload is the request of MAC Verify (KMIP 1.4 §4.34).
type MACVerifyRequestPayload struct {
	UniqueIdentifier        string `ttlv:",omitempty"`
	CryptographicParameters *kmip.CryptographicParameters
	Data                    []byte `ttlv:",omitempty"`
	MACData                 []byte `ttlv:",omitempty"`
	CorrelationValue        []byte `ttlv:",omitempty,version=v1.3.."`
	InitIndicator           *bool  `ttlv:",version=v1.3.."`
	FinalIndicator          *bool  `ttlv:",version=v1.3.."`
}

func (*MACVerifyRequestPayload) Operation() kmip.Operation { return kmip.OperationMACVerify }

// MACVerifyResponsePayload is the answer of MAC Verify.
type MACVerifyResponsePayload struct {
	UniqueIdentifier  string
	ValidityIndicator kmip.ValidityIndicator
	CorrelationValue  []byte `ttlv:",omitempty,version=v1.3.."`
}

func (*MACVerifyResponsePayload) Operation() kmip.Operation { return kmip.OperationMACVerify }

// HashRequestPayload is the request of Hash (KMIP 1.4 §4.37).
type HashRequestPayload struct {
	CryptographicParameters *kmip.CryptographicParameters
	Data                    []byte `ttlv:",omitempty"`
	CorrelationValue        []byte `ttlv:",omitempty"`
	InitIndicator           *bool
	FinalIndicator          *bool
}

func (*HashRequestPayload) Operation() kmip.Operation { return kmip.OperationHash }

// HashResponsePayload is the answer of Hash.
type HashResponsePayload struct {
	Data             []byte
	CorrelationValue []byte `ttlv:",omitempty"`
}

func (*HashResponsePayload) Operation() kmip.Operation { return kmip.OperationHash }

// RNGRetrieveRequestPayload is the request of RNG Retrieve (KMIP 1.4 §4.35).
type RNGRetrieveRequestPayload struct {
	DataLength int32
}

func (*RNGRetrieveRequestPayload) Operation() kmip.Operation { return kmip.OperationRNGRetrieve }

// RNGRetrieveResponsePayload is the answer of RNG Retrieve.
type RNGRetrieveResponsePayload struct {
	Data []byte
}

func (*RNGRetrieveResponsePayload) Operation() kmip.Operation { return kmip.OperationRNGRetrieve }

// RNGSeedRequestPayload is the request of RNG Seed (KMIP 1.4 §4.36).
type RNGSeedRequestPayload struct {
	Data []byte
}

func (*RNGSeedRequestPayload) Operation() kmip.Operation { return kmip.OperationRNGSeed }

// RNGSeedResponsePayload is the answer of RNG Seed: how many bytes of the
// seed the server used.
type RNGSeedResponsePayload struct {
	DataLength int32
}

func (*RNGSeedResponsePayload) Operation() kmip.Operation { return kmip.OperationRNGSeed }

// EncryptResponsePayload is the answer of Encrypt, with Data always
// present (kmip-go's omits an empty one).
type EncryptResponsePayload struct {
	UniqueIdentifier           string
	Data                       []byte
	IVCounterNonce             []byte `ttlv:",omitempty"`
	CorrelationValue           []byte `ttlv:",omitempty,version=v1.3.."`
	AuthenticatedEncryptionTag []byte `ttlv:",omitempty,version=v1.4.."`
}

func (*EncryptResponsePayload) Operation() kmip.Operation { return kmip.OperationEncrypt }

// DecryptResponsePayload is the answer of Decrypt, with Data always
// present.
type DecryptResponsePayload struct {
	UniqueIdentifier string
	Data             []byte
	CorrelationValue []byte `ttlv:",omitempty,version=v1.3.."`
}

func (*DecryptResponsePayload) Operation() kmip.Operation { return kmip.OperationDecrypt }

// localRequests are the request payloads this package decodes itself.
var localRequests = map[kmip.Operation]func() kmip.OperationPayload{
	kmip.OperationMAC:         func() kmip.OperationPayload { return &MACRequestPayload{} },
	kmip.OperationMACVerify:   func() kmip.OperationPayload { return &MACVerifyRequestPayload{} },
	kmip.OperationHash:        func() kmip.OperationPayload { return &HashRequestPayload{} },
	kmip.OperationRNGRetrieve: func() kmip.OperationPayload { return &RNGRetrieveRequestPayload{} },
	kmip.OperationRNGSeed:     func() kmip.OperationPayload { return &RNGSeedRequestPayload{} },
}

// decodeLocal decodes the Request Payload item of one of localRequests'
// operations.
func decodeLocal(raw []byte, newPayload func() kmip.OperationPayload) (kmip.OperationPayload, error) {
	pl := newPayload()
	dec, err := ttlv.NewTTLVDecoder(raw)
	if err != nil {
		return nil, err
	}
	if err := dec.TagAny(kmip.TagRequestPayload, pl); err != nil {
		return nil, err
	}
	return pl, nil
}
