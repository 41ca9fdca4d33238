package kmip

import (
	"context"
	"slices"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// discoverVersions answers the versions both sides speak, the server's
// preference first (KMIP 1.4 §4.26); with no list, every version it speaks.
func discoverVersions(_ context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.DiscoverVersionsRequestPayload)
	resp := &payloads.DiscoverVersionsResponsePayload{}
	for _, v := range supportedVersions {
		if len(req.ProtocolVersion) == 0 || slices.Contains(req.ProtocolVersion, v) {
			resp.ProtocolVersion = append(resp.ProtocolVersion, v)
		}
	}
	return resp, nil
}

// queryObjectTypes are the object types the server holds.
var queryObjectTypes = []kmip.ObjectType{
	kmip.ObjectTypeCertificate, kmip.ObjectTypeSymmetricKey, kmip.ObjectTypePublicKey, kmip.ObjectTypePrivateKey,
	kmip.ObjectTypeSecretData, kmip.ObjectTypeOpaqueObject,
}

// query describes the server (KMIP 1.4 §4.25): its operations in the
// negotiated version, object types, vendor and, from 1.3, capabilities.
func query(_ context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.QueryRequestPayload)
	resp := &payloads.QueryResponsePayload{}
	v := versionNumber(c.b.version)
	for _, f := range req.QueryFunction {
		switch f {
		case kmip.QueryFunctionOperations:
			var ops []kmip.Operation
			for op, spec := range c.b.s.ops {
				if spec.since <= v {
					ops = append(ops, op)
				}
			}
			slices.Sort(ops)
			resp.Operations = ops
		case kmip.QueryFunctionObjects:
			resp.ObjectType = queryObjectTypes
		case kmip.QueryFunctionServerInformation:
			resp.VendorIdentification = "Keyhold " + c.b.s.m.o.Version
			resp.ServerInformation = &ttlv.Value{Tag: kmip.TagServerInformation, Value: ttlv.Struct{}}
		case kmip.QueryFunctionCapabilities:
			if v >= 13 {
				no, yes := false, true
				resp.CapabilityInformation = []kmip.CapabilityInformation{{
					// Only AES Encrypt and Decrypt stream (Init Indicator,
					// Correlation Value); streamed Sign, Verify, MAC and
					// Hash are refused, so the server does not claim
					// streaming.
					StreamingCapability: &no, AsynchronousCapability: &no, AttestationCapability: &no,
					BatchUndoCapability: &yes, BatchContinueCapability: &yes,
					DestroyAction: kmip.DestroyActionKeyMaterialDeleted,
				}}
			}
		}
	}
	return resp, nil
}
