package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Another node enables a device (here: a second broker on the same store)
// and disables it; this node's broker follows on Reload. A device whose
// file cannot be opened on this node refuses requests until it can.
func TestReloadFollowsOtherNodes(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	other, here := r.broker(t), r.broker(t)
	ok := filepath.Join(r.dir, "ok.log")
	if err := other.Enable(ctx, Device{Path: "file", Type: "file", FilePath: ok}); err != nil {
		t.Fatal(err)
	}
	if here.Enabled() {
		t.Fatal("enabled before the reload")
	}
	if err := here.Reload(ctx); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !here.Enabled() || len(here.Devices()) != 1 {
		t.Fatalf("devices after reload: %+v", here.Devices())
	}
	logPair(t, here, entry(1, "s"))

	// A device at a path this node cannot write yet.
	missing := filepath.Join(r.dir, "not-yet", "audit.log")
	if err := other.Disable(ctx, "file"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(missing), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := other.Enable(ctx, Device{Path: "late", Type: "file", FilePath: missing}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Dir(missing)); err != nil {
		t.Fatal(err)
	}
	// Kept as a failing device: the trail's rules apply, and the change
	// counts as taken in (ErrDevicesFailing).
	if err := here.Reload(ctx); !errors.Is(err, ErrDevicesFailing) {
		t.Fatalf("reload of a device it cannot open: %v, want ErrDevicesFailing", err)
	}
	if got := here.Devices(); len(got) != 1 || got[0].Path != "late" {
		t.Fatalf("devices: %+v", got)
	}
	if err := here.LogRequest(ctx, entry(2, "s")); err == nil {
		t.Fatal("a request was let through with no writable audit device")
	}
	if err := os.MkdirAll(filepath.Dir(missing), 0o700); err != nil {
		t.Fatal(err)
	}
	logPair(t, here, entry(3, "s"))
	if err := other.Disable(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	if err := here.Reload(ctx); err != nil || here.Enabled() {
		t.Fatalf("after the other node disabled it: %v, enabled %v", err, here.Enabled())
	}
}
