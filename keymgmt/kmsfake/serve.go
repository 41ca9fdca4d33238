package kmsfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http/httptest"

	"cloud.google.com/go/kms/apiv1/kmspb"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	azkfake "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys/fake"
	"github.com/keyhold/keyhold/keymgmt/azurekv"
	"github.com/keyhold/keyhold/keymgmt/gcpckms"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Serve starts an HTTP server for the AWS fake on loopback: its URL is the
// kms endpoint. Stop it with Close.
func (f *AWS) Serve() *httptest.Server { return httptest.NewServer(f) }

// Serve starts a plaintext gRPC server for the GCP fake on loopback and
// returns its address (the kms endpoint) and a stop function.
func (f *GCP) Serve() (string, func(), error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	gs := grpc.NewServer()
	kmspb.RegisterKeyManagementServiceServer(gs, f)
	go gs.Serve(lis)
	return lis.Addr().String(), gs.Stop, nil
}

// GCPFactory is the real gcpckms factory with what reaching the fake takes:
// plaintext gRPC and no authentication.
func GCPFactory() provider.Factory {
	return gcpckms.NewFactory(option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
}

// Factory is the real azurekv factory over azkeys' fake transport to this vault.
func (f *Azure) Factory() provider.Factory {
	return azurekv.NewFactory(azurekv.FactoryOptions{Transport: azkfake.NewServerTransport(f.Server()), Credential: &azfake.TokenCredential{}})
}

// ServiceAccount returns a well-formed service account key file for a
// made-up account (the GCP fake does not authenticate).
func ServiceAccount() (string, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]string{"type": "service_account", "project_id": "keyhold-test",
		"client_email": "keyhold@keyhold-test.iam.gserviceaccount.com",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	return string(b), err
}
