package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
)

// Reload brings the open devices in line with the stored ones, after
// another node enabled or disabled a device: each node writes its own copy
// of a file device on its own disk, as Vault's nodes do. A device whose
// file cannot be opened here is reported and kept as a device that fails
// every write until its file opens (each write tries again): alone, it
// refuses requests (fail closed) rather than leave this node unaudited.
// It waits for a running Enable or Disable of this node: between its store
// write and its change of the open devices, a Reload would open the device
// again (a second writer of its file) or reopen a disabled one. Enable and
// Disable never wait for the change log's reader that calls Reload, so the
// wait cannot deadlock.
func (b *Broker) Reload(ctx context.Context) error {
	b.admin.Lock()
	defer b.admin.Unlock()
	var list []Device // sorted by path
	err := b.st.View(ctx, func(tx store.Tx) error {
		var err error
		list, err = storedDevices(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	cfgs := make(map[string]Device, len(list))
	for _, d := range list {
		cfgs[d.Path] = d
	}
	b.mu.Lock()
	var gone []*device
	for p, d := range b.devices {
		if c, ok := cfgs[p]; !ok || c.KeyID != d.cfg.KeyID || c.FilePath != d.cfg.FilePath {
			gone = append(gone, d)
			delete(b.devices, p)
		}
	}
	var missing []Device
	for _, c := range list {
		if _, ok := b.devices[c.Path]; !ok {
			missing = append(missing, c)
		}
	}
	b.mu.Unlock()
	for _, d := range gone {
		d.sink.drop()
	}
	var errs []error
	kept := true // every stored device is in b.devices, working or failing
	for _, c := range missing {
		if other := b.sharedFile(c); other != "" {
			errs = append(errs, fmt.Errorf("audit device %s: the device at %s/ writes its file %s", c.Path, other, c.FilePath))
			kept = false
			continue
		}
		d, err := b.open(ctx, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("audit device %s: %w", c.Path, err))
			if d = b.broken(ctx, c, err); d == nil {
				kept = false
				continue
			}
		}
		b.mu.Lock()
		if old := b.devices[c.Path]; old != nil {
			old.sink.close()
		}
		b.devices[c.Path] = d
		b.mu.Unlock()
	}
	if len(errs) > 0 && kept {
		return fmt.Errorf("%w: %v", ErrDevicesFailing, errs)
	}
	if len(errs) > 0 {
		return fmt.Errorf("audit: reload: %v", errs)
	}
	return nil
}

// ErrDevicesFailing is what Reload returns when every stored device is in
// place but some could not open their files here: those fail each write
// (and try their files again) as any failing device does, so this node is
// audited as the devices' rules say. Any other error of Reload leaves a
// stored device out of this node's trail.
var ErrDevicesFailing = errors.New("audit: reload: devices kept as failing")

// broken returns a device whose sink has failed with err, so that its
// writes try to open the file again; nil if even its key cannot be had.
func (b *Broker) broken(ctx context.Context, c Device, err error) *device {
	key, kerr := b.h.Export(ctx, hsm.Key{ID: c.KeyID, Blob: c.KeyBlob})
	if kerr != nil {
		return nil
	}
	s := newFileSink(c.FilePath)
	s.broken = err
	return &device{cfg: c, key: key, sink: s}
}
