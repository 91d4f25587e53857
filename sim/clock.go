package sim

import (
	"context"
	"sync"
	"time"
)

// Clock is the time the fleet runs on: the real one, or a FakeClock that a
// test advances by hand. The fleet only reads Now and waits on timers, and it
// waits for absolute deadlines (computed from Now when a wait starts), so a
// fake clock that jumps past several deadlines at once replays them all.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that delivers once on C after d; d ≤ 0
	// delivers at once.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of time.Timer the fleet uses.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was pending.
	Stop() bool
	// Reset re-arms the timer for d from now, discarding a delivery not yet
	// received; it reports whether it was pending.
	Reset(d time.Duration) bool
}

// RealClock is the wall clock (with Go's monotonic readings).
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) } // Go ≥ 1.23: no stale value survives Reset

var (
	_ Clock = realClock{}
	_ Clock = (*FakeClock)(nil)
	_ Timer = realTimer{}
	_ Timer = (*fakeTimer)(nil)
)

// FakeClock is a Clock that moves only when Advance or Set moves it. Timers
// fire, in deadline order, while it moves past them. It is safe for
// concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	pending map[*fakeTimer]struct{}
	changed chan struct{} // closed when the set of pending timers changes
}

// NewFakeClock returns a fake clock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, pending: map[*fakeTimer]struct{}{}}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock reaches now+d.
func (c *FakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// NewTimerAt returns a timer that fires when the clock reaches deadline (at
// once if it has). Unlike NewTimer(deadline.Sub(c.Now())), it cannot arm
// late when another goroutine moves the clock between the two reads.
func (c *FakeClock) NewTimerAt(deadline time.Time) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.ResetAt(deadline)
	return t
}

// newTimerAt arms a timer of c for an absolute deadline: exactly on a clock
// that has NewTimerAt (FakeClock), else from c.Now().
func newTimerAt(c Clock, deadline time.Time) Timer {
	if a, ok := c.(interface{ NewTimerAt(time.Time) Timer }); ok {
		return a.NewTimerAt(deadline)
	}
	return c.NewTimer(deadline.Sub(c.Now()))
}

// resetAt re-arms t (a timer of c) for an absolute deadline, exactly when
// the timer has ResetAt (FakeClock's).
func resetAt(c Clock, t Timer, deadline time.Time) {
	if a, ok := t.(interface{ ResetAt(time.Time) bool }); ok {
		a.ResetAt(deadline)
		return
	}
	t.Reset(deadline.Sub(c.Now()))
}

// Advance moves the clock forward by d, firing every timer due on the way.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	c.Set(target)
}

// Set moves the clock to t (never backwards), firing every timer due by then
// in deadline order; the clock reads each deadline as its timer fires.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		var next *fakeTimer
		for ft := range c.pending {
			if !ft.when.After(t) && (next == nil || ft.when.Before(next.when)) {
				next = ft
			}
		}
		if next == nil {
			break
		}
		if next.when.After(c.now) {
			c.now = next.when
		}
		delete(c.pending, next)
		next.fire(c.now)
	}
	if t.After(c.now) {
		c.now = t
	}
}

// Timers is the number of timers waiting to fire.
func (c *FakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// BlockUntil waits until at least n timers are waiting to fire (so the
// goroutines that wait on them have reached their wait), or ctx ends.
func (c *FakeClock) BlockUntil(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		if len(c.pending) >= n {
			c.mu.Unlock()
			return nil
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifyLocked wakes BlockUntil callers.
func (c *FakeClock) notifyLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

type fakeTimer struct {
	c    *FakeClock
	ch   chan time.Time
	when time.Time // guarded by c.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

// fire delivers now without blocking (the channel holds one value).
func (t *fakeTimer) fire(now time.Time) {
	select {
	case t.ch <- now:
	default:
	}
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, was := t.c.pending[t]
	delete(t.c.pending, t)
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.armLocked(t.c.now.Add(d))
}

// ResetAt re-arms the timer for the instant deadline (at once if the clock
// has reached it), discarding a delivery not yet received; it reports
// whether it was pending.
func (t *fakeTimer) ResetAt(deadline time.Time) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.armLocked(deadline)
}

func (t *fakeTimer) armLocked(when time.Time) bool {
	_, was := t.c.pending[t]
	delete(t.c.pending, t)
	select { // drop a delivery nobody received
	case <-t.ch:
	default:
	}
	t.when = when
	if !when.After(t.c.now) {
		t.fire(t.c.now)
	} else {
		t.c.pending[t] = struct{}{}
		t.c.notifyLocked()
	}
	return was
}
