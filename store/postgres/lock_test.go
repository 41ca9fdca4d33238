package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/postgres"
)

// When the database ends the session that holds a lock (as a restart, a
// failover or pg_terminate_backend does), the holder learns it within
// about a second, without asking, and Check says so; another node takes
// the lock, and the first holder's Unlock does not release it.
func TestLockLostWhenItsSessionEnds(t *testing.T) {
	url := location(t)
	a, b := open(t, url), open(t, url)
	ctx := t.Context()
	held, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := held.Check(ctx); err != nil {
		t.Fatalf("check of a lock just taken: %v", err)
	}
	admin, err := pgx.Connect(ctx, srv.URLWithPassword("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var ended bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int64(postgres.LockSessionPID(held))).Scan(&ended); err != nil || !ended {
		t.Fatalf("terminate the lock's session: %v %v", ended, err)
	}
	select {
	case <-held.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the holder was not told that its lock's session ended")
	}
	if err := held.Check(ctx); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("check of a lost lock: %v", err)
	}
	// The holder's own context ends with the loss: Check still says why.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := held.Check(done); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("check of a lost lock with a context that ended: %v", err)
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	other, err := b.Lock(wait, "k")
	if err != nil {
		t.Fatalf("another node takes the lost lock: %v", err)
	}
	defer other.Unlock()
	held.Unlock()
	if err := other.Check(ctx); err != nil {
		t.Fatalf("the new holder's lock: %v", err)
	}
}

// Closing the store ends the sessions of the locks still held: their
// holders are told, as for any other loss.
func TestLockLostWhenItsStoreCloses(t *testing.T) {
	url := location(t)
	a, b := open(t, url), open(t, url)
	ctx := t.Context()
	held, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	select {
	case <-held.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the holder was not told that closing its store ended the lock")
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	other, err := b.Lock(wait, "k")
	if err != nil {
		t.Fatalf("another node takes the lock: %v", err)
	}
	other.Unlock()
	held.Unlock()
}

// A lock that is unlocked is not reported lost, and Check fails after it.
func TestLockUnlockedIsNotLost(t *testing.T) {
	st := open(t, location(t))
	ctx := t.Context()
	held, err := st.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	held.Unlock()
	held.Unlock() // a second time does nothing
	select {
	case <-held.Lost():
		t.Fatal("an unlocked lock was reported lost")
	default:
	}
	if err := held.Check(ctx); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("check after unlock: %v", err)
	}
}
