// Package xks is the AWS KMS External Key Store (XKS) proxy: the four
// operations of the XKS Proxy API spec v1.0.3 (GetHealthStatus,
// GetKeyMetadata, Encrypt, Decrypt) served over HTTPS to AWS KMS, with
// every external key an AES-256 key generated in the HSM that never leaves it.
//
// Design:
//   - Each xks mount has its own listener and router (route.go): the
//     XKS part of a path is fixed, so the prefix is whatever precedes it,
//     and the empty prefix answers at both /kms/... and //kms/... (net/http's
//     ServeMux would redirect the latter). Unknown paths are
//     InvalidUriPathException, other methods 405.
//   - Requests are authenticated with SigV4 (sigv4.go) over exactly the
//     headers the client signed, the payload hash and a 5-minute skew; a
//     credential belongs to one path prefix. Secrets are sealed under an HSM
//     key of the mount in the store and held in memory only.
//   - The data plane reads an immutable state (state.go) swapped atomically
//     on every administrative write, so credentials, keys and rules change
//     without a restart; a configuration write restarts the listener.
//   - Encrypt is AES-256-GCM in the token with the spec's length-prefixed
//     AAD over the caller's AAD and our ciphertextMetadata; a requested CDIV
//     is computed first and the output is test-decrypted before answering
//     (ops.go). Health is a deep check with the mount's own test key, cached.
//   - Secondary authorization rules (model.go) match requestMetadata per
//     key or prefix; health is exempt.
//   - Errors are *Error values with a spec errorName; errors.go is the one
//     place where names become HTTP statuses and domain errors (hsm, fault)
//     become names. Messages never carry secrets or plaintext; causes go to
//     the log only.
//   - TLS keys (an operator's, imported, or one issued by the mount's
//     internal CA, ca.go) are HSM keys; handshakes are signed in the token.
//
// Manager (manager.go, admin.go) is what the REST API's xks mount routes
// call; it keeps its records in the store's key/value space (store.go).
package xks
