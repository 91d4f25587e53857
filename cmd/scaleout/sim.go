package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/sim"
)

// cmdSim is scaleout sim: the simulated fleet as a server until SIGTERM or
// Ctrl-C.
func cmdSim(ctx context.Context, e env, args []string) error {
	cfg := sim.DefaultConfig()
	fs := pflag.NewFlagSet("scaleout sim", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8000", "address to serve the gateway, /metrics and /admin on")
	soFile := fs.String("scaledobject", "", "behave as this ScaledObject manifest would (names, bounds, threshold, paused); flags given too win")
	bindSimFlags(fs, &cfg)
	if err := parseFlags(fs, args, e, "scaleout sim [flags]"); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("sim takes no arguments, got %q", fs.Args())
	}
	if *soFile != "" {
		so, err := run.ReadScaledObject(*soFile)
		if err != nil {
			return err
		}
		// The manifest sets what it says; flags the user gave win over it.
		flagged := cfg
		cfg = sim.DefaultConfig()
		run.SimFromScaledObject(&cfg, so)
		copySimFlags(&cfg, &flagged, fs)
		for _, l := range so.Lint() {
			fmt.Fprintf(e.stderr, "warn  %s\n", l)
		}
	}
	if err := cfg.Validate(); err != nil {
		return usagef("sim: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.signals:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := sim.Serve(ctx, *listen, cfg, func(addr string) {
		fmt.Fprintf(e.stdout, "scaleout sim: serving %s on http://%s (/v1/completions, /v1/chat/completions, /metrics, GET /admin/state, POST /admin/pause, /admin/unpause, /admin/scale?replicas=N)\n", cfg.Model, addr)
		paused := "un-paused"
		if cfg.Paused {
			paused = "paused"
		}
		fmt.Fprintf(e.stdout, "  replicas %d (min %d, max %d), threshold %g waiting per replica, HPA sync %s, ScaledObject %s/%s %s\n",
			cfg.Replicas.Start, cfg.Replicas.Min, cfg.Replicas.Max, cfg.Threshold, cfg.HPASync, cfg.Namespace, cfg.ScaledObject, paused)
	})
	if errors.Is(err, syscall.EADDRINUSE) {
		return withCode(exitCannotRun, fmt.Errorf("%w: another process serves %s (a scaleout sim still running?); stop it, or serve on another address with --listen, e.g. --listen 127.0.0.1:8001", err, *listen))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return withCode(exitCannotRun, err)
	}
	return nil
}
