package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// What a store shared by several appliance nodes offers beyond
// transactions. Each is a separate interface, checked by type assertion: a
// single-node store (SQLite) implements none of them and its node is then
// alone, leads every job and needs no invalidation signal.

// ErrLeaseHeld is returned by AcquireLease when another holder has the
// lease and it has not expired.
var ErrLeaseHeld = errors.New("store: lease held by another node")

// ErrLeaseLost is returned by RenewLease when the lease expired or was
// taken over: the holder must stop at once what the lease guarded.
var ErrLeaseLost = errors.New("store: lease lost")

// Change is one committed write transaction of some node, named by what it
// touched, so that other nodes can drop what they cached of it.
type Change struct {
	Seq  int64  // increasing in commit order; gaps are allowed
	Node string // the NodeID of the store that committed it
	// Paths names what changed: "kv:" + a key/value path, "key:" + mount +
	// "/" + key name, "kmip:" + mount + "/" + scope + "/" + id. A path that
	// ends with "/" stands for everything under it.
	Paths []string
	// Confirmed: this node committed the change and its Update returned
	// nil, so what the node caches already holds it. A change of this
	// node's whose Update failed after the commit went through (the
	// caller's context ended during COMMIT) is not confirmed: the node
	// must handle it as it would another node's.
	Confirmed bool
}

// PendingReloads counts, per mount, the reloads of other nodes' changes
// that have not run yet (they wait for a lock held by an administrative
// call, or retry after a failure). Until they have, the mount's state may
// grant what the store no longer does, so the mount refuses requests.
type PendingReloads struct {
	m sync.Map // mount → *atomic.Int32
}

// Hold counts one pending reload of mount; the returned function ends it.
func (p *PendingReloads) Hold(mount string) (done func()) {
	n, _ := p.m.LoadOrStore(mount, new(atomic.Int32))
	n.(*atomic.Int32).Add(1)
	return func() { n.(*atomic.Int32).Add(-1) }
}

// Pending reports whether a reload of mount has not run yet.
func (p *PendingReloads) Pending(mount string) bool {
	n, ok := p.m.Load(mount)
	return ok && n.(*atomic.Int32).Load() > 0
}

// ChangedMounts reads, from the paths of changes, which mounts of a kind
// whose records live under root (such as "kmip/") changed: "kv:" + root +
// mount + "/..." names one. all is true when paths is nil or a path is
// coarser than one mount ("kv:", "kv:kmip/"), so that any mount may have
// changed. Other paths are ignored.
func ChangedMounts(paths []string, root string) (mounts map[string]bool, all bool) {
	mounts = map[string]bool{}
	all = paths == nil
	for _, p := range paths {
		if !strings.HasPrefix(p, "kv:") {
			continue
		}
		rest, ok := strings.CutPrefix(p, "kv:"+root)
		if !ok {
			all = all || strings.HasPrefix("kv:"+root, p) // "kv:" or a shorter prefix of root
			continue
		}
		id, _, found := strings.Cut(rest, "/")
		if !found || id == "" {
			all = true // "kv:kmip/" or "kv:kmip/<mount>" without its "/"
			continue
		}
		mounts[id] = true
	}
	return mounts, all
}

// ChangeLog is the store's record of committed writes, kept for a while so
// that every node sees every change (a node that fell further behind than
// the log reaches must drop all it caches).
type ChangeLog interface {
	// NodeID names this store's writes in the log (one per process).
	NodeID() string
	// ChangesSince returns, in order, up to limit changes with Seq > after,
	// and the oldest and newest Seq the log holds (0 when empty; pruning
	// keeps the newest change, so the log is empty only before the first):
	// if oldest is above after+1, changes may have been pruned in between;
	// if newest is below after, the log went back (the database was
	// restored, or failed over to a copy that lacked recent commits).
	ChangesSince(ctx context.Context, after int64, limit int) (changes []Change, oldest, newest int64, err error)
	// LatestChange returns the Seq of the newest committed change, 0 if none.
	LatestChange(ctx context.Context) (int64, error)
	// WaitChange returns when a change may have been committed since it was
	// called (a push from the database), when d has passed, or when ctx ends.
	// It returns an error when the push channel is broken.
	WaitChange(ctx context.Context, d time.Duration) error
	// PruneChanges forgets the changes committed before the time given.
	PruneChanges(ctx context.Context, before time.Time) (int, error)
}

// Lease is the right of one holder to run something alone until it
// expires. Expiry is on the database's clock; Deadline is the holder's own
// (monotonic) view of it, earlier than the database's, so that a holder has
// stopped before anyone else can take the lease over.
type Lease struct {
	Name       string
	Holder     string
	Epoch      int64     // increases with every change of holder (a fencing token)
	AcquiredAt time.Time // database clock, when this holder took it
	ExpiresAt  time.Time // database clock
	Deadline   time.Time // local clock (with a monotonic reading): stop before this
}

// Leases are named leases with expiry on the database's clock.
type Leases interface {
	// AcquireLease takes the lease for holder for ttl if it is free,
	// expired or already the holder's; ErrLeaseHeld otherwise.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (*Lease, error)
	// RenewLease extends a held lease by ttl from now; ErrLeaseLost if it
	// is no longer the holder's in the same epoch.
	RenewLease(ctx context.Context, l *Lease, ttl time.Duration) (*Lease, error)
	// ReleaseLease gives a held lease up (it expires at once); releasing a
	// lease that was lost is not an error.
	ReleaseLease(ctx context.Context, l *Lease) error
	// GetLease returns the lease's current state, or ErrNotFound if it was
	// never taken. Deadline is zero.
	GetLease(ctx context.Context, name string) (*Lease, error)
}

// Node is an appliance process as it reports itself to the others.
type Node struct {
	ID        string    // the process's NodeID
	Name      string    // the configured node name (e.g. the host name)
	APIAddr   string    // the address clients reach its REST API at
	Version   string    // the appliance version
	Info      []byte    // JSON the node publishes about itself (health, listeners)
	StartedAt time.Time // database clock
	SeenAt    time.Time // database clock, last heartbeat
	Now       time.Time // the database's clock when the list was read
}

// Nodes is the registry of the nodes sharing the store.
type Nodes interface {
	// Heartbeat records n (by ID) as alive now, on the database's clock.
	Heartbeat(ctx context.Context, n *Node) error
	// ListNodes returns every registered node, sorted by name then ID.
	ListNodes(ctx context.Context) ([]Node, error)
	// ForgetNodes removes the nodes not seen since before.
	ForgetNodes(ctx context.Context, before time.Time) (int, error)
	// RemoveNode removes a node that stops cleanly.
	RemoveNode(ctx context.Context, id string) error
}

// Locker takes named locks that exclude every node sharing the store. A
// lock is held until it is unlocked or the holder's session with the
// database ends: the process died, or the database restarted, failed over,
// ended the session or stopped answering. So a dead node never keeps one,
// and a live holder can lose one without having asked: it learns of it
// through its HeldLock, and must then stop what the lock guards, since
// another node may have taken it.
type Locker interface {
	// Lock waits for the named lock, or fails when ctx ends.
	Lock(ctx context.Context, name string) (HeldLock, error)
}

// HeldLock is a lock taken with Locker.Lock.
type HeldLock interface {
	// Lost is closed once the lock is known to be no longer held (not
	// when it is unlocked).
	Lost() <-chan struct{}
	// Check confirms that the lock is still held, with a round trip to
	// the database, or fails with ErrLockLost (and Lost is closed).
	Check(ctx context.Context) error
	// Unlock releases the lock; later calls do nothing.
	Unlock()
}
