package api

import (
	"context"
	"net/http"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

func (s *Server) sysRoutes() {
	// Vault's client and load balancers pass these to choose the status of
	// each state; Keyhold is never sealed, uninitialised or a standby, so only
	// activecode (the status when healthy) applies.
	f := Fields{"activecode": {Type: TypeInt}, "listener": {Type: TypeString}}
	for _, k := range []string{"standbyok", "perfstandbyok"} {
		f[k] = Field{Type: TypeBool}
	}
	for _, k := range []string{"standbycode", "drsecondarycode", "haunhealthycode", "performancestandbycode", "removedcode", "sealedcode", "uninitcode"} {
		f[k] = Field{Type: TypeInt}
	}
	h := s.handle("sys/health", f, map[Operation]HandlerFunc{OpRead: s.health})
	h.unauthN, h.noAudit = true, true
}

// mayReadMounts reports whether the request carries a token (not spending
// one of its uses) whose policies let it read sys/mounts.
func (s *Server) mayReadMounts(ctx context.Context, r *http.Request) bool {
	tok := requestToken(r)
	if tok == "" {
		return false
	}
	t, err := s.d.Auth.Lookup(ctx, tok)
	if err != nil {
		return false
	}
	ok, err := s.d.Auth.Allowed(ctx, t, "sys/mounts", string(OpRead), false)
	return err == nil && ok
}

// health answers like Vault's sys/health (top-level fields) and adds the
// HSM. It is a live check: the token must answer and the store must read.
func (s *Server) health(ctx context.Context, req *Request) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// Whether a listener is up tells that its mount exists: listener= is
	// answered only for a token that may read sys/mounts, and refused the
	// same way for every name otherwise.
	listener := req.Data.String("listener")
	mounts := s.mayReadMounts(ctx, req.HTTP)
	if listener != "" && !mounts {
		return nil, fault.New(fault.Permission, "sys/health?listener= needs a token that may read sys/mounts (X-Vault-Token)")
	}
	status := http.StatusOK
	if c := req.Data.Int("activecode"); c >= 200 && c < 600 {
		status = c
	}
	var problems []string
	if _, err := s.d.HSM.Random(ctx, 8); err != nil {
		status = http.StatusServiceUnavailable
		problems = append(problems, "hsm: unavailable")
		s.d.Logger.Error("health: hsm check failed", "error", err)
	}
	if err := s.d.Store.View(ctx, func(tx store.Tx) error {
		_, err := tx.List(ctx, "sys/")
		return err
	}); err != nil {
		status = http.StatusServiceUnavailable
		problems = append(problems, "store: unavailable")
		s.d.Logger.Error("health: store check failed", "error", err)
	}
	initialized, err := s.d.Auth.Initialized(ctx)
	if err != nil {
		status = http.StatusServiceUnavailable
		problems = append(problems, "store: unavailable")
	}
	if !initialized && status == http.StatusOK {
		status = http.StatusNotImplemented // Vault's status for "not initialised"
		if c := req.Data.Int("uninitcode"); c >= 200 && c < 600 {
			status = c
		}
	}
	info := s.d.HSM.Info()
	caps := s.d.HSM.Capabilities()
	body := map[string]any{
		"initialized":     initialized,
		"sealed":          false,
		"standby":         false,
		"version":         s.d.Version,
		"server_time_utc": time.Now().UTC().Unix(),
		"hsm": map[string]any{
			"token_label":      info.TokenLabel,
			"manufacturer":     info.Manufacturer,
			"model":            info.Model,
			"serial_number":    info.SerialNumber,
			"firmware_version": info.FirmwareVersion,
			"library":          info.Library,
			"library_version":  info.LibraryVersion,
			"kek_version":      s.d.HSM.KEKVersion(),
			"capabilities":     caps,
		},
	}
	if ok, more := s.healthHA(ctx, body, listener); !ok {
		status = http.StatusServiceUnavailable
		problems = append(problems, more...)
	}
	if !mounts {
		// Without a token that may read sys/mounts nobody learns which
		// mounts exist, nor where they listen.
		delete(body, "listeners")
	}
	if len(problems) > 0 {
		body["problems"] = problems
	}
	return &Response{Status: status, Raw: body}, nil
}
