module github.com/keyhold/keyhold

go 1.26.8

require (
	github.com/hashicorp/hcl v1.0.1-vault-7
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/miekg/pkcs11 v1.1.2
)
