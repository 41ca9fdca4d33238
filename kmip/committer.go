package kmip

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/keyhold/keyhold/store"
)

// committer is group commit for the writes of KMIP operations. A write that
// a client is told succeeded must be durable, and a durable commit costs a
// disk flush (several milliseconds here), so writes that arrive while one
// commit is in flight are run together in the next transaction: one flush
// for the group.
//
// A write function must keep its outcome (including refusals such as a
// wrong state) in its own variables and return an error only when the
// transaction cannot go on. If a group's transaction fails, each of its
// writes runs again alone, so one bad write cannot fail the others; the
// functions therefore read what they change inside the transaction and
// have no effect outside it.
type committer struct {
	st       store.Store
	reqs     chan *commitReq
	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

type commitReq struct {
	fn  func(store.Tx) error
	err chan error
}

// maxGroup bounds the writes of one transaction.
const maxGroup = 64

func newCommitter(st store.Store) *committer {
	c := &committer{st: st, reqs: make(chan *commitReq), stop: make(chan struct{})}
	c.done.Add(1)
	go c.loop()
	return c
}

// do runs fn in a write transaction and returns once it is durable. ctx
// bounds the wait for the committer to take the write; once taken, do waits
// for its outcome (a write is short, and its caller must know it).
func (c *committer) do(ctx context.Context, fn func(store.Tx) error) error {
	r := &commitReq{fn: fn, err: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-c.stop:
		return errors.New("kmip: the server is shutting down")
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.err
}

// close stops the committer once its current group is done; closing again
// does nothing.
func (c *committer) close() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.done.Wait()
}

func (c *committer) loop() {
	defer c.done.Done()
	for {
		var group []*commitReq
		select {
		case r := <-c.reqs:
			group = append(group, r)
		case <-c.stop:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case r := <-c.reqs:
				group = append(group, r)
			default:
				break more
			}
		}
		c.run(group)
	}
}

// run commits a group, or each write alone if the group's transaction fails.
func (c *committer) run(group []*commitReq) {
	ctx := context.Background()
	err := c.st.Update(ctx, func(tx store.Tx) error {
		for _, r := range group {
			if err := r.call(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(group) == 1 {
		for _, r := range group {
			r.err <- err
		}
		return
	}
	for _, r := range group {
		r.err <- c.st.Update(ctx, r.call)
	}
}

// call runs a write function; a panic (a bug) fails that write instead of
// the process, since writes run on the committer's goroutine.
func (r *commitReq) call(tx store.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("kmip: a write failed: %v", p)
		}
	}()
	return r.fn(tx)
}
