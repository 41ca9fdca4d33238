package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/postgres"
	"github.com/keyhold/keyhold/store/sqlite"
)

// validate checks the storage block and fills its defaults.
func (c *StorageConfig) validate() []error {
	var errs []error
	if c.Type == "" {
		c.Type = "sqlite"
	}
	switch c.Type {
	case "sqlite":
		if c.Path == "" {
			errs = append(errs, errors.New("storage.path is required"))
		}
		if c.URL != "" || c.PasswordEnv != "" || c.PasswordFile != "" || c.MaxConns != 0 {
			errs = append(errs, errors.New("storage.url, password_env, password_file and max_conns are for type \"postgres\""))
		}
	case "postgres":
		if c.Path != "" {
			errs = append(errs, errors.New("storage.path is for type \"sqlite\"; postgres takes storage.url"))
		}
		if c.URL == "" {
			errs = append(errs, errors.New("storage.url is required (postgres://user@host:5432/db?sslmode=verify-full)"))
		} else if urlHasPassword(c.URL) {
			// Never echo the URL: it holds the secret.
			errs = append(errs, errors.New("storage.url must not hold the password; use storage.password_env or storage.password_file"))
		} else if err := checkDatabaseTLS(c.URL); err != nil {
			errs = append(errs, err)
		}
		if c.PasswordEnv != "" && c.PasswordFile != "" {
			errs = append(errs, errors.New("at most one of storage.password_env and storage.password_file"))
		}
		if c.MaxConns < 0 {
			errs = append(errs, errors.New("storage.max_conns must not be negative"))
		}
	default:
		errs = append(errs, fmt.Errorf("storage.type %q is not supported (sqlite, postgres)", c.Type))
	}
	return errs
}

// checkDatabaseTLS refuses a connection to a database on another host that
// is not TLS with a verified certificate: without sslmode=verify-full (or
// verify-ca) the driver skips the certificate check, and with prefer or
// allow it falls back to a plaintext connection when the server (or whoever
// answers in its place) declines TLS, and sends it the password. A
// database on this host (loopback, a Unix socket) may go without.
func checkDatabaseTLS(connString string) error {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return errors.New("storage.url does not parse as a PostgreSQL connection string")
	}
	local := func(host string) bool {
		if strings.HasPrefix(host, "/") || host == "localhost" {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	// verify-full checks the chain and the name; verify-ca (and require
	// with a root certificate, as libpq has it) skips Go's check for its
	// own chain check (VerifyPeerCertificate).
	verified := func(c *tls.Config) bool {
		return c != nil && (!c.InsecureSkipVerify || c.VerifyPeerCertificate != nil)
	}
	hosts := []struct {
		host string
		tls  *tls.Config
	}{{cfg.Host, cfg.TLSConfig}}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, struct {
			host string
			tls  *tls.Config
		}{f.Host, f.TLSConfig})
	}
	for _, h := range hosts {
		if !local(h.host) && !verified(h.tls) {
			return errors.New("storage.url: a database on another host needs sslmode=verify-full (or verify-ca): other modes skip the certificate check or fall back to plaintext, which hands the password to whoever answers")
		}
	}
	return nil
}

// passwordProbe stands in for a password the connection string may set.
const passwordProbe = "keyhold-no-password-in-the-url"

// urlHasPassword reports whether a connection string carries a password, in
// whatever form the PostgreSQL driver reads one: URL user info, a password
// query parameter, or a password keyword (with spaces around "=", quoted).
// The string is read by the driver's own parser, with passwordProbe set
// where the string's own password would override it (the user info of a
// URL, a keyword ahead of the string's), so a password from PGPASSWORD or a
// .pgpass file does not count. A string the driver cannot parse is left to
// checkDatabaseTLS, which refuses it.
func urlHasPassword(s string) bool {
	probe := passwordProbe + "-keyword"
	probed := "password=" + probe + " " + s
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return false
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
		probe = passwordProbe + "-userinfo"
		u.User = url.UserPassword(u.User.Username(), probe)
		probed = u.String()
	}
	cfg, err := pgconn.ParseConfig(probed)
	if err != nil {
		return false
	}
	if cfg.Password != probe {
		return true
	}
	// A differently cased keyword is no password to the driver, which
	// sends it to the server as a run-time parameter: refused all the same.
	for k := range cfg.RuntimeParams {
		if strings.EqualFold(k, "password") {
			return true
		}
	}
	return false
}

// openStore opens the configured store; nodeID names this process's writes
// in a shared store's change log.
func openStore(ctx context.Context, c *StorageConfig, nodeID string) (store.Store, error) {
	switch c.Type {
	case "postgres":
		var password string
		if c.PasswordEnv != "" || c.PasswordFile != "" {
			p, err := readSecret("storage.password_env", c.PasswordEnv, "storage.password_file", c.PasswordFile)
			if err != nil {
				return nil, err
			}
			password = p
		}
		return postgres.Open(ctx, postgres.Config{URL: c.URL, Password: password, MaxConns: c.MaxConns, NodeID: nodeID})
	default:
		return sqlite.Open(c.Path)
	}
}
