package keymgmt

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/fault"
)

// A read shows a version's public key as its blob records it, checked by
// the blob's HMAC: a public key put into the store's own column (another
// key's, by someone who can write the database) is refused, not shown as
// this key's.
func TestPublicKeyShownIsTheBlobs(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{})
	for _, name := range []string{"mine", "theirs"} {
		if _, err := e.m.Create(ctx, mount, name, "ecdsa-p256"); err != nil {
			t.Fatal(err)
		}
	}
	before, err := e.m.Get(ctx, mount, "mine")
	if err != nil || !strings.Contains(before.Versions[0].PublicKey, "PUBLIC KEY") {
		t.Fatalf("read: %+v %v", before, err)
	}
	db, err := sql.Open("sqlite3", e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE key_versions SET public_key = (SELECT v.public_key FROM key_versions v JOIN keys k ON v.key_id = k.id WHERE k.name = 'theirs')
		WHERE key_id = (SELECT id FROM keys WHERE name = 'mine')`)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("tampering: %v (%d rows)", err, n)
	}
	// (fault.KindOf(nil) is Internal too: the error must be there.)
	if k, err := e.m.Get(ctx, mount, "mine"); err == nil || fault.KindOf(err) != fault.Internal || !strings.Contains(err.Error(), "stored public key") {
		t.Fatalf("read after the stored public key was swapped: %v, %+v", err, k)
	}
}
