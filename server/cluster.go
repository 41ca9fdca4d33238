package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/keyhold/keyhold/api"
	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/ha"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/keymgmt"
	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/xks"
)

// HAConfig tunes a node of several sharing one PostgreSQL store; with
// SQLite the node is alone and only retry_interval applies.
type HAConfig struct {
	NodeName string `hcl:"node_name"` // shown in sys/ha-status; default the host name
	APIAddr  string `hcl:"api_addr"`  // the address clients reach this node at, shown in sys/ha-status
	// LeaseTTL is how long the leader lease lasts unrenewed: background
	// work moves to another node at most this long after its node died.
	LeaseTTL string `hcl:"lease_ttl"` // default 5s
	// RetryInterval is how often the leader retries unfinished distributions
	// of keys to cloud KMSs.
	RetryInterval string `hcl:"retry_interval"` // default 1m
}

func (c *HAConfig) validate() []error {
	var errs []error
	for _, d := range []struct{ name, v string }{{"ha.lease_ttl", c.LeaseTTL}, {"ha.retry_interval", c.RetryInterval}} {
		if d.v == "" {
			continue
		}
		if v, err := parseTimeout(d.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
		} else if d.name == "ha.lease_ttl" && v < time.Second {
			errs = append(errs, fmt.Errorf("ha.lease_ttl must be at least 1s"))
		}
	}
	return errs
}

// haOptions are the cluster's options from the configuration.
func (c *Config) haOptions(st store.Store, log *slog.Logger, version, apiAddr string) (ha.Options, time.Duration) {
	o := ha.Options{Store: st, Logger: log, Version: version, APIAddr: apiAddr}
	retry := time.Minute
	if h := c.HA; h != nil {
		o.Name, o.APIAddr = h.NodeName, firstNonEmpty(h.APIAddr, apiAddr)
		if d, err := parseTimeout(h.LeaseTTL); err == nil {
			o.LeaseTTL = d
		}
		if d, err := parseTimeout(h.RetryInterval); err == nil {
			retry = d
		}
	}
	if o.Name == "" {
		o.Name, _ = os.Hostname()
	}
	return o, retry
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// parts are what the cluster keeps coherent and runs jobs with.
type parts struct {
	hsm    *hsm.HSM
	tokens *auth.Manager
	trail  *audit.Broker
	api    *api.Server
	xks    *xks.Manager
	kmip   *kmip.Manager
	keys   *keymgmt.Manager
}

// subscribe hands other nodes' changes to what caches them.
func subscribe(cl *ha.Cluster, p parts, log *slog.Logger) {
	cl.Subscribe("kv:sys/policy/", func(ctx context.Context, paths []string) error {
		var names []string
		for _, x := range paths {
			n, ok := strings.CutPrefix(x, "kv:sys/policy/")
			if !ok || n == "" {
				names = nil // coarse: every policy
				break
			}
			names = append(names, n)
		}
		p.tokens.PoliciesChanged(names)
		return nil
	})
	// A reload that fails leaves the change unapplied: the node stops
	// counting as caught up, refuses guarded requests once that lasts, and
	// tries again at the next read of the change log.
	cl.Subscribe("kv:sys/mounts/", func(ctx context.Context, _ []string) error {
		if err := p.api.MountsChanged(ctx); err != nil {
			log.Error("ha: cannot reload the mount table", "error", err)
			return err
		}
		return nil
	})
	cl.Subscribe("kv:sys/audit/", func(ctx context.Context, _ []string) error {
		err := p.trail.Reload(ctx)
		if errors.Is(err, audit.ErrDevicesFailing) {
			// In place, failing each write until their files open: the
			// trail's own rules apply (refused if no device can write).
			log.Error("ha: audit devices changed by another node could not all be opened here", "error", err)
			return nil
		}
		if err != nil {
			log.Error("ha: cannot reload the audit devices", "error", err)
		}
		return err
	})
	// The XKS and KMIP managers retry a failed reload themselves and refuse
	// the mount's requests meanwhile.
	cl.Subscribe("kv:xks/", func(ctx context.Context, paths []string) error { p.xks.Changed(ctx, paths); return nil })
	cl.Subscribe("kv:kmip/", func(ctx context.Context, paths []string) error { p.kmip.Changed(ctx, paths); return nil })
	cl.Subscribe("kmip:", func(ctx context.Context, paths []string) error { p.kmip.Changed(ctx, paths); return nil })
	// Unwrapped keys of what another node changed leave the HSM cache.
	forget := func(ctx context.Context, paths []string) error { p.hsm.Forget(ctx, forgetMatch(paths)); return nil }
	cl.Subscribe("kv:", forget)
	cl.Subscribe("kmip:", forget)
}

// forgetMatch says which HSM blob ids belong to the changed paths: a key
// kept in the key/value space has an id under its path (XKS keys:
// <path>/<random>); a KMIP object's id is "kmip:<mount>:<uid>". Nil paths
// (the node lost track) match everything.
func forgetMatch(paths []string) func(id string) bool {
	if paths == nil {
		return func(string) bool { return true }
	}
	var prefixes, exact []string
	for _, p := range paths {
		if rest, ok := strings.CutPrefix(p, "kmip:"); ok {
			parts := strings.SplitN(rest, "/", 3)
			if len(parts) == 3 && parts[2] != "" {
				exact = append(exact, "kmip:"+parts[0]+":"+parts[2])
			} else {
				prefixes = append(prefixes, "kmip:"+parts[0]+":")
			}
			continue
		}
		if rest, ok := strings.CutPrefix(p, "kv:"); ok {
			if strings.HasSuffix(rest, "/") || rest == "" {
				prefixes = append(prefixes, rest)
			} else {
				prefixes = append(prefixes, rest+"/")
			}
		}
	}
	return func(id string) bool {
		for _, x := range exact {
			if id == x {
				return true
			}
		}
		for _, x := range prefixes {
			if strings.HasPrefix(id, x) {
				return true
			}
		}
		return false
	}
}

// addJobs registers the background work that must run on one node.
func addJobs(cl *ha.Cluster, p parts, retry time.Duration, log *slog.Logger) {
	cl.AddJob(ha.Job{Name: "keymgmt-retry", Every: retry, Run: func(ctx context.Context) error {
		r, err := p.keys.RetryDistributions(ctx)
		if err != nil {
			return err
		}
		if r.Tried > 0 {
			log.Info("keymgmt: unfinished distributions retried", "tried", r.Tried, "done", r.Done, "failing", r.Errors)
		}
		if len(r.Errors) > 0 {
			return fmt.Errorf("%d distribution(s) still failing", len(r.Errors))
		}
		return nil
	}})
	// Expired tokens are refused anyway; their entries go every 10 minutes.
	cl.AddJob(ha.Job{Name: "token-tidy", Every: 10 * time.Minute, Run: func(ctx context.Context) error {
		n, err := p.tokens.Tidy(ctx)
		if n > 0 {
			log.Info("expired tokens removed", "count", n)
		}
		return err
	}})
	if cl.Shared() {
		cl.AddJob(ha.Job{Name: "ha-prune", Every: time.Minute, Run: func(ctx context.Context) error {
			return cl.Prune(ctx, time.Hour)
		}})
	}
}

// nodeInfo is what a node publishes about itself in its heartbeats.
func nodeInfo(cl *ha.Cluster, p parts) func() []byte {
	return func() []byte {
		listeners := map[string]map[string][]string{"kmip": {}, "xks": {}}
		for _, m := range p.api.Mounts() {
			switch m.Type {
			case "kmip":
				if a := p.kmip.Addrs(m.UUID); len(a) > 0 {
					listeners["kmip"][m.Path] = a
				}
			case "xks":
				if a := p.xks.Addrs(m.UUID); len(a) > 0 {
					listeners["xks"][m.Path] = a
				}
			}
		}
		b, _ := json.Marshal(map[string]any{
			"healthy":      cl.Staleness() < ha.DefaultMaxStaleness,
			"staleness_ms": cl.Staleness().Milliseconds(),
			"listeners":    listeners,
			"jobs":         cl.Jobs(),
		})
		return b
	}
}
