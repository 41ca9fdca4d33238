package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Every connection ends a transaction left idle and probes a silent client
// (see TestDeadHostInsideAnUpdateReleasesTheWriters in package ha); a value
// the connection URL gives wins.
func TestSessionDefaults(t *testing.T) {
	pc, err := pgxpool.ParseConfig("postgres://keyhold@127.0.0.1:5432/keyhold?tcp_keepalives_idle=60")
	if err != nil {
		t.Fatal(err)
	}
	applySessionDefaults(pc.ConnConfig.RuntimeParams)
	want := map[string]string{
		"application_name":                    "keyhold",
		"idle_in_transaction_session_timeout": "30000",
		"tcp_keepalives_idle":                 "60",
		"tcp_keepalives_interval":             "5",
		"tcp_keepalives_count":                "3",
	}
	for name, v := range want {
		if got := pc.ConnConfig.RuntimeParams[name]; got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
}
