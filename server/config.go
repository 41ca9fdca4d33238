package server

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/keymgmt"
	"github.com/keyhold/keyhold/softhsm"
)

// Config is the appliance's configuration file (HCL, like Vault's). See
// keyhold.example.hcl at the top of the repository for every setting.
type Config struct {
	HSM       *HSMConfig       `hcl:"hsm"`
	Storage   *StorageConfig   `hcl:"storage"`
	Listener  *ListenerConfig  `hcl:"listener"`
	Telemetry *TelemetryConfig `hcl:"telemetry"`
	KeyMgmt   *KeyMgmtConfig   `hcl:"keymgmt"`
	HA        *HAConfig        `hcl:"ha"`
	LogLevel  string           `hcl:"log_level"`
	LogJSON   bool             `hcl:"log_json"`
}

// HSMConfig says which PKCS#11 token holds the KEKs.
type HSMConfig struct {
	Module      string `hcl:"module"`
	TokenLabel  string `hcl:"token_label"`
	PINEnv      string `hcl:"pin_env"`  // name of an environment variable holding the PIN
	PINFile     string `hcl:"pin_file"` // a file holding the PIN (mode 0600 or stricter)
	Sessions    int    `hcl:"sessions"`
	CacheSize   int    `hcl:"cache_size"`
	LabelPrefix string `hcl:"label_prefix"`
	// SoftHSMConf, when set, is exported as SOFTHSM2_CONF before the module
	// loads (SoftHSM2 only; dev mode sets it).
	SoftHSMConf string `hcl:"softhsm_conf"`
	// KEKNonExtractable makes new KEKs never extractable, where the HSM
	// vendor's tools clone partitions; by default they leave the token only
	// wrapped under a key its security officer trusts (the KEK ceremony).
	KEKNonExtractable bool `hcl:"kek_non_extractable"`
	// JoinCluster opens a token without KEKs without making one: a node that
	// joins a cluster receives the cluster's KEKs (keyhold operator
	// kek-import) instead.
	JoinCluster bool `hcl:"join_cluster"`
	// TokenOnlyOAEP refuses RSA-OAEP decryptions (KMIP Decrypt) with
	// parameters the token's own OAEP does not take, instead of decoding
	// OAEP in Go over the token's raw RSA (hsm.Config.TokenOnlyOAEP).
	TokenOnlyOAEP bool `hcl:"token_only_oaep"`
}

// HSMOptions is the hsm package's configuration from the hsm block, with
// the PIN read from its source. For SoftHSM2 it exports SOFTHSM2_CONF.
func (c *Config) HSMOptions() (hsm.Config, error) {
	if c.HSM.SoftHSMConf != "" {
		if err := os.Setenv(softhsm.ConfEnv, c.HSM.SoftHSMConf); err != nil {
			return hsm.Config{}, err
		}
	}
	pin, err := c.HSM.PIN()
	if err != nil {
		return hsm.Config{}, err
	}
	return hsm.Config{
		Module:            c.HSM.Module,
		TokenLabel:        c.HSM.TokenLabel,
		PIN:               pin,
		Sessions:          c.HSM.Sessions,
		CacheSize:         c.HSM.CacheSize,
		LabelPrefix:       c.HSM.LabelPrefix,
		KEKNonExtractable: c.HSM.KEKNonExtractable,
		NoCreateKEK:       c.HSM.JoinCluster,
		TokenOnlyOAEP:     c.HSM.TokenOnlyOAEP,
	}, nil
}

// StorageConfig says where metadata and wrapped blobs live: a SQLite file
// (one node) or a PostgreSQL database (several nodes).
type StorageConfig struct {
	Type string `hcl:"type"` // "sqlite" (default) or "postgres"
	Path string `hcl:"path"` // sqlite: the database file
	// postgres: a connection URL without the password, e.g.
	// postgres://keyhold@db.example:5432/keyhold?sslmode=verify-full
	URL          string `hcl:"url"`
	PasswordEnv  string `hcl:"password_env"`  // postgres: an environment variable holding the password
	PasswordFile string `hcl:"password_file"` // postgres: a file holding the password (mode 0600 or stricter)
	MaxConns     int    `hcl:"max_conns"`     // postgres: the pool's size (default 16)
}

// ListenerConfig is the REST API listener.
type ListenerConfig struct {
	Address     string `hcl:"address"`
	TLSCertFile string `hcl:"tls_cert_file"`
	TLSKeyFile  string `hcl:"tls_key_file"`
	TLSDisable  bool   `hcl:"tls_disable"` // plain HTTP: only for dev mode or behind a TLS proxy on loopback
	// AllowedHosts, if set, are the only Host header values the listener
	// answers (a name, or name:port); see hostGuard.
	AllowedHosts []string `hcl:"allowed_hosts"`
}

// TelemetryConfig configures /v1/sys/metrics.
type TelemetryConfig struct {
	// UnauthenticatedMetricsAccess serves the metrics without a token (for a
	// Prometheus scraper on a trusted network).
	UnauthenticatedMetricsAccess bool `hcl:"unauthenticated_metrics_access"`
}

// KeyMgmtConfig configures the distribution of keys to cloud KMSs (BYOK).
type KeyMgmtConfig struct {
	// ClientTimeout bounds each call to a cloud ("30s"; a number is seconds).
	// Unset: KEYHOLD_CLIENT_TIMEOUT, else 30 s. A kms provider's own timeout wins.
	ClientTimeout string `hcl:"client_timeout"`
	// ForbidSoftwareOAEP refuses wrapping schemes whose OAEP hash the token
	// cannot do, instead of OAEP-encrypting their one-time ephemeral key in Go.
	ForbidSoftwareOAEP bool `hcl:"forbid_software_oaep"`
}

// parseTimeout reads "30s" or "30" (seconds).
func parseTimeout(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a positive duration such as 30s, got %q", v)
	}
	return d, nil
}

// KeyMgmtOptions are the keymgmt manager's options from the configuration
// and, for the timeout, the environment (getenv).
func (c *Config) KeyMgmtOptions(getenv func(string) string) (keymgmt.Options, error) {
	var o keymgmt.Options
	v := getenv("KEYHOLD_CLIENT_TIMEOUT")
	if c.KeyMgmt != nil {
		o.ForbidSoftwareOAEP = c.KeyMgmt.ForbidSoftwareOAEP
		if c.KeyMgmt.ClientTimeout != "" {
			v = c.KeyMgmt.ClientTimeout
		}
	}
	if v != "" {
		d, err := parseTimeout(v)
		if err != nil {
			return o, fmt.Errorf("config: keymgmt client timeout: %w", err)
		}
		o.ClientTimeout = d
	}
	return o, nil
}

// LoadConfig reads and checks a configuration file. Unknown settings are an
// error, so a typo does not silently fall back to a default.
func LoadConfig(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(string(src))
}

// ParseConfig parses the HCL text of a configuration file.
func ParseConfig(src string) (*Config, error) {
	file, err := hcl.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := checkKeys(file.Node, reflect.TypeOf(Config{}), ""); err != nil {
		return nil, err
	}
	var c Config
	if err := hcl.DecodeObject(&c, file.Node); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkKeys reports keys in node that the struct type has no field for.
func checkKeys(node ast.Node, t reflect.Type, where string) error {
	list, ok := node.(*ast.ObjectList)
	if !ok {
		if o, isObj := node.(*ast.ObjectType); isObj {
			list = o.List
		} else {
			return nil
		}
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("hcl"), ",")
		fields[name] = f.Type
	}
	var unknown []string
	for _, item := range list.Items {
		if len(item.Keys) == 0 {
			continue
		}
		key := item.Keys[0].Token.Value().(string)
		ft, ok := fields[key]
		if !ok {
			unknown = append(unknown, where+key)
			continue
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			if err := checkKeys(item.Val, ft, where+key+"."); err != nil {
				return err
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config: unknown setting(s): %s", strings.Join(unknown, ", "))
	}
	return nil
}

func (c *Config) validate() error {
	var errs []error
	if c.HSM == nil {
		errs = append(errs, errors.New("an hsm block is required"))
	} else {
		if c.HSM.Module == "" {
			errs = append(errs, errors.New("hsm.module is required"))
		}
		if c.HSM.TokenLabel == "" {
			errs = append(errs, errors.New("hsm.token_label is required"))
		}
		if (c.HSM.PINEnv == "") == (c.HSM.PINFile == "") {
			errs = append(errs, errors.New("exactly one of hsm.pin_env and hsm.pin_file is required"))
		}
	}
	if c.Storage == nil {
		errs = append(errs, errors.New("a storage block is required"))
	} else {
		errs = append(errs, c.Storage.validate()...)
	}
	if c.Listener == nil {
		c.Listener = &ListenerConfig{}
	}
	if c.Listener.Address == "" {
		c.Listener.Address = "127.0.0.1:8200"
	}
	for _, h := range c.Listener.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ \t@?#") {
			errs = append(errs, fmt.Errorf("listener: allowed_hosts: %q is not a host name or name:port", h))
		}
	}
	if !c.Listener.TLSDisable && (c.Listener.TLSCertFile == "" || c.Listener.TLSKeyFile == "") {
		errs = append(errs, errors.New("listener.tls_cert_file and listener.tls_key_file are required unless listener.tls_disable = true"))
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q is not one of debug, info, warn, error", c.LogLevel))
	}
	if c.HA != nil {
		errs = append(errs, c.HA.validate()...)
	}
	if c.KeyMgmt != nil && c.KeyMgmt.ClientTimeout != "" {
		if _, err := parseTimeout(c.KeyMgmt.ClientTimeout); err != nil {
			errs = append(errs, fmt.Errorf("keymgmt.client_timeout: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// PIN reads the HSM PIN from its environment variable or file.
func (h *HSMConfig) PIN() (string, error) {
	return readSecret("hsm.pin_env", h.PINEnv, "hsm.pin_file", h.PINFile)
}

// readSecret reads a secret from the environment variable env, else from
// file, which must not be readable by group or others.
func readSecret(envSetting, env, fileSetting, file string) (string, error) {
	if env != "" {
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", fmt.Errorf("config: environment variable %s (%s) is not set", env, envSetting)
		}
		return v, nil
	}
	st, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", fileSetting, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("config: %s %s is readable by group or others (mode %04o); chmod 600 it", fileSetting, file, st.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", fileSetting, err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("config: %s %s is empty", fileSetting, file)
	}
	return v, nil
}
