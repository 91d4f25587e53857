package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ShutdownGrace is how long Serve lets in-flight requests finish after its
// context ends before it cancels them.
const ShutdownGrace = 5 * time.Second

// Serve runs a fleet of cfg on the real clock and serves it on listen
// (host:port; port 0 picks one) until ctx ends. ready, when not nil, gets the
// bound address once the listener accepts connections. When ctx ends it stops
// accepting, gives in-flight requests ShutdownGrace to finish, cancels the
// rest, stops the controllers and returns nil. It returns an error when the
// config is invalid, the address cannot be bound, or the server fails.
func Serve(ctx context.Context, listen string, cfg Config, ready func(addr string)) error {
	f, err := New(cfg, RealClock())
	if err != nil {
		return err
	}
	return serveFleet(ctx, listen, f, ready)
}

// serveFleet serves f on listen until ctx ends (Serve without making f).
func serveFleet(ctx context.Context, listen string, f *Fleet, ready func(addr string)) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("sim: listen on %s: %w", listen, err)
	}
	reqCtx, cancelReqs := context.WithCancel(context.Background())
	defer cancelReqs()
	var handlers sync.WaitGroup // every handler has returned when Serve does
	h := f.Handler()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handlers.Add(1)
			defer handlers.Done()
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
	}
	// Shutdown waits up to 5 s for a connection that never sent a request
	// (a client's spare dial); those are closed as shutdown starts instead.
	var fresh sync.Map // net.Conn in StateNew
	var stopping atomic.Bool
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if st != http.StateNew {
			fresh.Delete(c)
			return
		}
		fresh.Store(c, struct{}{})
		if stopping.Load() {
			_ = c.Close()
		}
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = f.Run(runCtx) // cannot fail: this fleet has no other Run
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}

	var failed error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		failed = fmt.Errorf("sim: serve on %s: %w", ln.Addr(), err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	stopping.Store(true)
	fresh.Range(func(c, _ any) bool { _ = c.(net.Conn).Close(); return true })
	if err := srv.Shutdown(shutCtx); err != nil {
		cancelReqs() // the grace is over: in-flight requests end as aborts
		_ = srv.Close()
	}
	cancel()
	cancelReqs()
	handlers.Wait()
	stopRun()
	wg.Wait()
	if failed == nil {
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed = fmt.Errorf("sim: serve on %s: %w", ln.Addr(), err)
		}
	}
	return failed
}
