package sim

import (
	"context"
	"testing"
	"time"
)

func fired(t Timer) (time.Time, bool) {
	select {
	case at := <-t.C():
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestFakeClock(t *testing.T) {
	c := NewFakeClock(epoch)
	a := c.NewTimer(2 * time.Second)
	b := c.NewTimer(time.Second)
	now := c.NewTimer(0)
	if at, ok := fired(now); !ok || !at.Equal(epoch) {
		t.Fatalf("a 0 timer fires at once: %v %v", at, ok)
	}
	if c.Timers() != 2 {
		t.Fatalf("%d pending, want 2", c.Timers())
	}
	c.Advance(1500 * time.Millisecond)
	if at, ok := fired(b); !ok || !at.Equal(epoch.Add(time.Second)) {
		t.Fatalf("b fires at its deadline: %v %v", at, ok)
	}
	if _, ok := fired(a); ok {
		t.Fatal("a fired early")
	}
	// Reset re-arms from now; Stop reports whether it was pending.
	if !a.Reset(time.Second) { // now due at 2.5 s
		t.Fatal("Reset of a pending timer reports false")
	}
	c.Advance(600 * time.Millisecond) // 2.1 s
	if _, ok := fired(a); ok {
		t.Fatal("a fired at its old deadline after Reset")
	}
	if !a.Stop() || a.Stop() {
		t.Fatal("Stop: want true then false")
	}
	c.Advance(time.Hour)
	if _, ok := fired(a); ok {
		t.Fatal("a stopped timer fired")
	}
	// Set never moves back.
	before := c.Now()
	c.Set(epoch)
	if !c.Now().Equal(before) {
		t.Fatalf("Set moved the clock back to %v", c.Now())
	}
	// BlockUntil waits for a timer to be armed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	armed := make(chan Timer)
	go func() { armed <- c.NewTimer(time.Minute) }()
	if err := c.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	tm := <-armed
	c.Advance(time.Minute)
	if _, ok := fired(tm); !ok {
		t.Fatal("armed timer did not fire")
	}
	short, stop := context.WithCancel(context.Background())
	stop()
	if err := c.BlockUntil(short, 5); err == nil {
		t.Fatal("BlockUntil with an ended context must fail")
	}
}

func TestRealClock(t *testing.T) {
	c := RealClock()
	start := c.Now()
	tm := c.NewTimer(time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("real timer did not fire")
	}
	if c.Now().Sub(start) < time.Millisecond {
		t.Fatal("fired early")
	}
	if tm.Stop() {
		t.Fatal("Stop of a fired timer reports true")
	}
}

// TestFakeClockDeadlines: a timer armed for an instant fires at that
// instant however the clock moved before it was armed, and at once when the
// clock is already there; ResetAt re-arms it.
func TestFakeClockDeadlines(t *testing.T) {
	c := NewFakeClock(epoch)
	at := epoch.Add(15 * time.Second)
	c.Advance(10 * time.Second) // moves after the caller chose the deadline
	tm := newTimerAt(c, at)
	c.Advance(4 * time.Second)
	if _, ok := fired(tm); ok {
		t.Fatal("fired before its deadline")
	}
	c.Advance(time.Second)
	if got, ok := fired(tm); !ok || !got.Equal(at) {
		t.Fatalf("fired %v %v, want at %v", got, ok, at)
	}
	if past := newTimerAt(c, epoch); !func() bool { _, ok := fired(past); return ok }() {
		t.Fatal("a deadline already passed does not fire at once")
	}
	resetAt(c, tm, at.Add(time.Minute))
	if c.Timers() != 1 {
		t.Fatalf("%d pending after ResetAt, want 1", c.Timers())
	}
	c.Set(at.Add(time.Minute))
	if got, ok := fired(tm); !ok || !got.Equal(at.Add(time.Minute)) {
		t.Fatalf("after ResetAt: %v %v", got, ok)
	}
	// On the real clock the helpers fall back to durations.
	rc := RealClock()
	rt := newTimerAt(rc, rc.Now().Add(time.Millisecond))
	resetAt(rc, rt, rc.Now())
	select {
	case <-rt.C():
	case <-time.After(10 * time.Second):
		t.Fatal("real timer did not fire")
	}
}
