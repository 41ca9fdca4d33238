# Keyhold configuration (HCL). Start with: keyhold server -config keyhold.hcl
# Unknown settings are an error, so a typo never falls back to a default.

# The PKCS#11 token that holds the key-encryption keys (KEKs). The token is
# found by its label, never by slot number. Keys themselves never live in the
# token: they are wrapped under the KEK and stored as blobs.
hsm {
  module      = "/usr/lib/softhsm/libsofthsm2.so"
  token_label = "keyhold"

  # The user PIN comes from exactly one of an environment variable or a file
  # (mode 0600 or stricter). It is never a flag or a value in this file.
  pin_env = "KEYHOLD_HSM_PIN"
  # pin_file = "/etc/keyhold/hsm-pin"

  # Logged-in sessions in the pool (each used by one request at a time) and
  # unwrapped keys kept as session objects (an LRU).
  sessions   = 8
  cache_size = 1024

  # Labels of the KEKs and their MAC keys: <label_prefix>-kek-v1, -mac-v1, ...
  # label_prefix = "keyhold"

  # SoftHSM2 only: exported as SOFTHSM2_CONF before the module loads.
  # softhsm_conf = "/var/lib/keyhold/softhsm2.conf"

  # New KEKs leave the token only wrapped under a key its security officer
  # trusts (the KEK ceremony, see README "High availability"); set this where
  # the vendor's tools clone HSMs, so they never leave it at all.
  # kek_non_extractable = false

  # A node joining a cluster receives its KEKs (keyhold operator kek-import)
  # and must never make one of its own.
  # join_cluster = false

  # RSA-OAEP decryptions the token's own OAEP cannot do (SoftHSM2 2.6.1: any
  # hash but SHA-1, or a label) run as the token's raw RSA operation with the
  # OAEP decoding in Go; the private key stays in the token (README, "KMIP
  # server"). Set this to refuse them instead.
  # token_only_oaep = false
}

# Metadata and wrapped key blobs. No plaintext key material is ever stored.
# SQLite is the single-node default. Several nodes share one PostgreSQL
# database instead (see README, "High availability"):
#   storage {
#     type          = "postgres"
#     url           = "postgres://keyhold@db.example:5432/keyhold?sslmode=verify-full"
#     password_file = "/etc/keyhold/db-password"   # or password_env; never in the URL
#     max_conns     = 16
#   }
storage {
  type = "sqlite"
  path = "/var/lib/keyhold/keyhold.db"
}

# The REST API listener. TLS is required unless tls_disable = true, which is
# meant only for a TLS-terminating proxy on the same host.
listener {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/keyhold/tls.crt"
  tls_key_file  = "/etc/keyhold/tls.key"
  # The Host names it answers (others get 421); unset: any with TLS, only
  # loopback names for a plain-HTTP listener on loopback.
  # allowed_hosts = ["keyhold.example"]
}

# Several nodes on one PostgreSQL store (see README, "High availability").
# ha {
#   node_name      = "kh-1"                       # default: the host name
#   api_addr       = "https://kh-1.example:8200"  # shown in sys/ha-status
#   lease_ttl      = "5s"                         # background work moves this long after its node dies
#   retry_interval = "1m"                         # the leader retries unfinished cloud distributions
# }

# debug, info, warn or error; log_json = true for JSON lines.
log_level = "info"
log_json  = false

# /v1/sys/metrics (Prometheus text format) needs a token unless this is set.
telemetry {
  unauthenticated_metrics_access = false
}

# Key distribution to cloud KMSs (BYOK). Each call to a cloud times out after
# client_timeout (else KEYHOLD_CLIENT_TIMEOUT, else 30s; a kms provider's own
# timeout wins). Where a wrapping scheme needs an OAEP hash the token cannot
# do, the one-time ephemeral AES key (never the key being distributed) is
# OAEP-encrypted in software unless forbid_software_oaep = true.
keymgmt {
  client_timeout       = "30s"
  forbid_software_oaep = false
}
