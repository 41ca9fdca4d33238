// Package kmip is the appliance's KMIP server: KMIP 1.0–1.4 binary TTLV over
// mutual TLS, one listener per kmip mount, with Vault's administration model
// (an internal CA per mount, scopes, roles and client certificates).
//
// Design:
//
//   - The codec and the message types are github.com/ovh/kmip-go, behind
//     package wire, which checks every byte before decoding. The semantics
//     are this package's: object states and transitions (KMIP 1.4 §3.22),
//     the ID placeholder of a batch, Batch Order and Batch Error
//     Continuation (Stop, Continue, Undo), attribute rules (who may set,
//     modify and delete what, in which state, single or multiple instances),
//     names unique in a scope (names.go), Locate, and answers that hold only
//     the attributes of the negotiated protocol version.
//   - Identity is the client certificate: the mount's CA issued it, its
//     serial names a credential bound to one scope and one role, and the
//     role's operation flags decide every batch item. Objects belong to a
//     scope and are invisible from the others: the store looks objects up by
//     mount, scope and id.
//   - Key material is never stored in the clear: symmetric keys and private
//     keys are HSM blobs (generated in the token for Create and Create Key
//     Pair) bound to the object's Unique Identifier; public keys,
//     certificates, secret data, opaque objects and keys the token cannot
//     hold are sealed with AES-GCM under an HSM key of the mount, the
//     object's identity as AAD. KMIP clients need the material, so Get
//     exports it.
//   - Cryptographic operations (Encrypt, Decrypt, Sign, MAC) run in the
//     token with keys it holds; only operations that need no secret (RSA
//     encryption, signature verification, Hash) run in Go. Before a key is
//     used its state, dates and usage mask are checked and its usage limits
//     counted (usage.go). Streamed AES operations keep their state in the
//     token between requests (stream.go).
//   - Every batch item is audited (request event before it runs, fail
//     closed; response event after), counted in the metrics, and, with the
//     KMIP_*_DEBUGGING variables, logged with key material redacted.
//   - Errors of any layer become a KMIP Result Reason in one place
//     (errors.go).
//
// The dispatcher is a table of operations (ops.go); the object model
// (object.go, attrs.go, material.go, asymmetric.go) keeps the object type
// and the value kind apart.
package kmip
