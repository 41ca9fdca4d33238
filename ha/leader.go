package ha

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keyhold/keyhold/store"
)

// Job is background work that must not run on two nodes at once: it runs
// on the leader only, first when the node becomes leader and then every
// Every. Its context ends when the node stops leading (before its lease can
// have expired in the database); a job checks it between steps.
type Job struct {
	Name  string
	Every time.Duration
	Run   func(ctx context.Context) error
}

// JobStatus is what a node knows of a job's runs on it.
type JobStatus struct {
	Name      string    `json:"name"`
	Runs      int       `json:"runs"`
	LastStart time.Time `json:"last_start,omitzero"`
	LastEnd   time.Time `json:"last_end,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Running   bool      `json:"running"`
}

type jobState struct {
	job Job
	mu  sync.Mutex
	st  JobStatus
}

type leaderState struct {
	mu      sync.Mutex
	lease   *store.Lease       // held lease; nil when not leading
	since   time.Time          // when this node became leader
	cancel  context.CancelFunc // ends the jobs' context
	expire  *time.Timer        // cancels at the lease's local deadline
	running *sync.WaitGroup    // the jobs' goroutines of this term (a new one per term)
}

// AddJob registers a job; add jobs before Run.
func (c *Cluster) AddJob(j Job) {
	c.jobsMu.Lock()
	defer c.jobsMu.Unlock()
	c.jobs = append(c.jobs, &jobState{job: j, st: JobStatus{Name: j.Name}})
}

// Leading reports whether this node leads (runs the jobs) now.
func (c *Cluster) Leading() bool {
	c.leader.mu.Lock()
	defer c.leader.mu.Unlock()
	return c.leader.lease != nil && time.Now().Before(c.leader.lease.Deadline)
}

// Jobs returns the status of the jobs on this node.
func (c *Cluster) Jobs() []JobStatus {
	c.jobsMu.Lock()
	defer c.jobsMu.Unlock()
	out := make([]JobStatus, len(c.jobs))
	for i, j := range c.jobs {
		j.mu.Lock()
		out[i] = j.st
		j.mu.Unlock()
	}
	return out
}

// elect campaigns for the leader lease and renews it while held, every
// fifth of its ttl.
func (c *Cluster) elect(ctx context.Context) {
	every := c.o.LeaseTTL / 5
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.campaign(ctx)
		select {
		case <-ctx.Done():
			// Give the lease up, so that another node leads at once.
			rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			c.resign(rctx)
			cancel()
			return
		case <-t.C:
		}
	}
}

// campaign takes or renews the lease once.
func (c *Cluster) campaign(ctx context.Context) {
	if c.leases == nil {
		if !c.Leading() {
			// Alone: lead until shut down.
			c.lead(ctx, &store.Lease{Name: leaderLease, Holder: c.id, Epoch: 1, Deadline: time.Now().Add(100 * 365 * 24 * time.Hour)})
		}
		return
	}
	c.leader.mu.Lock()
	held := c.leader.lease
	c.leader.mu.Unlock()
	// Each call is bounded by the campaign's period: on a database that
	// stopped answering, the next campaign tries again (on another
	// connection) instead of waiting for TCP to give the link up.
	cctx, cancel := context.WithTimeout(ctx, c.o.LeaseTTL/5)
	defer cancel()
	if held == nil {
		l, err := c.leases.AcquireLease(cctx, leaderLease, c.id, c.o.LeaseTTL)
		if err == nil {
			c.lead(ctx, l)
		} else if !errors.Is(err, store.ErrLeaseHeld) && ctx.Err() == nil {
			c.o.Logger.Warn("ha: cannot campaign for the leader lease", "error", err)
		}
		return
	}
	l, err := c.leases.RenewLease(cctx, held, c.o.LeaseTTL)
	switch {
	case err == nil:
		c.renewed(l)
	case errors.Is(err, store.ErrLeaseLost):
		c.stepDown("the leader lease was lost")
	default:
		// The database may be unreachable: keep leading until the local
		// deadline (the timer steps down then).
		if ctx.Err() == nil {
			c.o.Logger.Warn("ha: cannot renew the leader lease", "error", err, "deadline_in", time.Until(held.Deadline).String())
		}
	}
}

// lead starts this node's term: every job runs until the term ends.
func (c *Cluster) lead(ctx context.Context, l *store.Lease) {
	if !time.Now().Before(l.Deadline) {
		return // the term ran out before it began (a pause): campaign again
	}
	c.leader.mu.Lock()
	defer c.leader.mu.Unlock()
	jctx, cancel := context.WithCancel(ctx)
	running := &sync.WaitGroup{}
	c.leader.lease, c.leader.since, c.leader.cancel, c.leader.running = l, time.Now(), cancel, running
	epoch := l.Epoch
	c.leader.expire = time.AfterFunc(time.Until(l.Deadline), func() {
		// Only this term, and only if no renewal moved its deadline on
		// meanwhile (the timer may fire while a renewal holds the lock).
		c.stepDownIf("the leader lease ran out before it was renewed", func(cur *store.Lease) bool {
			return cur.Epoch == epoch && !time.Now().Before(cur.Deadline)
		})
	})
	c.o.Logger.Info("ha: this node leads the background jobs", "node", c.o.Name, "epoch", l.Epoch)
	c.jobsMu.Lock()
	jobs := c.jobs
	c.jobsMu.Unlock()
	for _, j := range jobs {
		running.Go(func() { c.runJob(jctx, j, l.Epoch) })
	}
}

// renewed moves the term's deadline to the renewed lease's.
func (c *Cluster) renewed(l *store.Lease) {
	c.leader.mu.Lock()
	defer c.leader.mu.Unlock()
	if c.leader.lease == nil || c.leader.lease.Epoch != l.Epoch {
		return
	}
	c.leader.lease = l
	c.leader.expire.Reset(time.Until(l.Deadline))
}

// stepDown ends the term: the jobs' context ends and they are waited for.
func (c *Cluster) stepDown(why string) { c.stepDownIf(why, nil) }

// stepDownIf ends the term if there is one and (with a test) the test holds
// for its lease, decided under the leader's lock.
func (c *Cluster) stepDownIf(why string, test func(*store.Lease) bool) {
	c.leader.mu.Lock()
	if c.leader.lease == nil || test != nil && !test(c.leader.lease) {
		c.leader.mu.Unlock()
		return
	}
	c.leader.cancel()
	c.leader.expire.Stop()
	epoch := c.leader.lease.Epoch
	running := c.leader.running
	c.leader.lease = nil
	c.leader.mu.Unlock()
	running.Wait()
	c.o.Logger.Info("ha: this node stopped leading", "node", c.o.Name, "epoch", epoch, "reason", why)
}

// resign steps down and releases the lease so another node takes over at once.
func (c *Cluster) resign(ctx context.Context) {
	c.leader.mu.Lock()
	l := c.leader.lease
	c.leader.mu.Unlock()
	c.stepDown("shutting down")
	if l != nil && c.leases != nil {
		if err := c.leases.ReleaseLease(ctx, l); err != nil {
			c.o.Logger.Warn("ha: releasing the leader lease failed; another node takes over when it expires", "error", err)
		}
	}
}

// runJob runs a job at once and then every Every until ctx ends.
func (c *Cluster) runJob(ctx context.Context, j *jobState, epoch int64) {
	every := j.job.Every
	if every <= 0 {
		every = time.Minute
	}
	for {
		c.runOnce(ctx, j, epoch)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func (c *Cluster) runOnce(ctx context.Context, j *jobState, epoch int64) {
	if ctx.Err() != nil {
		return
	}
	start := time.Now()
	j.mu.Lock()
	j.st.Running, j.st.LastStart = true, start.UTC()
	j.mu.Unlock()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = errors.New("the job panicked")
				c.o.Logger.Error("ha: job panicked", "job", j.job.Name, "panic", p)
			}
		}()
		return j.job.Run(ctx)
	}()
	end := time.Now()
	j.mu.Lock()
	j.st.Running, j.st.LastEnd, j.st.Runs = false, end.UTC(), j.st.Runs+1
	j.st.LastError = ""
	if err != nil {
		j.st.LastError = err.Error()
	}
	j.mu.Unlock()
	// The run's interval on this node's clock, for operators and for the
	// tests that check that no two nodes ran a job at once.
	level := c.o.Logger.Debug
	if err != nil && ctx.Err() == nil {
		level = c.o.Logger.Warn
	}
	level("ha: job ran", "job", j.job.Name, "node", c.o.Name, "epoch", epoch,
		"start_unix_nano", start.UnixNano(), "end_unix_nano", end.UnixNano(), "error", errText(err))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
