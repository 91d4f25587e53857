//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/scaleout/scaleout/internal/record"
	"github.com/scaleout/scaleout/internal/sysres"
	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/timeline"
)

// profileResult is one in-process run of scaleout's load under pprof.
type profileResult struct {
	Name     string
	Load     string
	Kind     string // cpu or heap
	File     string // the profile
	TopFile  string // go tool pprof -top's output
	Top      string // its first lines
	Requests uint64
	Errors   uint64
	CPU      time.Duration // this process's CPU over the load (getrusage)
	Mem      string        // heap: the runtime's memory figures when the profile was taken
	Err      string
}

// runProfiles runs, for every section of this run, the same load scaleout
// ran, in this process with loadgen, under the CPU profiler (rate, cpu) or
// with a heap profile taken while the streams are held (rss).
func (s *suite) runProfiles(ctx context.Context) error {
	o := s.opt
	if err := os.MkdirAll(o.profile, 0o755); err != nil {
		return err
	}
	fmt.Printf("\n== profiles: scaleout's load in-process (loadgen + the run's recorder) under runtime/pprof, into %s ==\n", o.profile)
	type job struct {
		name string
		srv  serveConfig
		l    load
		kind string
	}
	var jobs []job
	if o.sections["rate"] {
		// At the target when scaleout sustains it; otherwise at the highest
		// rate it sustained: the steady-state cost per request near capacity,
		// not the collapse past it (where new workers dial new connections).
		rate := float64(targetRate)
		if s.rate != nil {
			if b := s.rate.search["scaleout"].Best(); b > 0 && b < rate {
				rate = b
			}
		}
		jobs = append(jobs, job{"rate", serveConfig{Tokens: 64, Prompt: promptTokens},
			load{Name: "rate", MaxTokens: 1, Rate: rate, Duration: o.rateDuration, Timeout: o.timeout}, "cpu"})
	}
	if o.sections["cpu"] {
		jobs = append(jobs, job{"cpu", serveConfig{Tokens: 64, Prompt: promptTokens},
			load{Name: "cpu", Stream: true, MaxTokens: 64, Rate: o.cpuRate, Duration: o.cpuDuration, Timeout: o.timeout}, "cpu"})
	}
	if o.sections["rss"] && s.m.NoFileHard >= fdNeeded(o.streams) {
		tokens := int(o.hold.Seconds()) + 2
		jobs = append(jobs, job{"rss", serveConfig{Tokens: tokens, TokenDelay: time.Second, Prompt: promptTokens},
			load{Name: "rss", Stream: true, MaxTokens: tokens, Concurrency: o.streams, Duration: o.hold, Timeout: o.hold + 2*time.Minute}, "heap"})
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		srv, err := startServer(s.exe, j.srv)
		if err != nil {
			return err
		}
		p := s.profileOne(ctx, j.name, j.kind, srv, j.l)
		srv.stop()
		s.profiles = append(s.profiles, p)
		if p.Err != "" {
			fmt.Printf("profile %s: %s\n", p.Name, p.Err)
		} else {
			fmt.Printf("profile %s (%s): %d requests, %d errors, %.1f µs CPU per request in-process; %s\n",
				p.Name, p.Load, p.Requests, p.Errors, float64(p.CPU.Microseconds())/float64(max(p.Requests, 1)), p.TopFile)
			if p.Mem != "" {
				fmt.Println(p.Mem)
			}
			fmt.Println(p.Top)
		}
		s.pause(ctx)
	}
	return nil
}

func (s *suite) profileOne(ctx context.Context, name, kind string, srv *serverProc, l load) profileResult {
	p := profileResult{Name: name, Kind: kind, Load: l.label()}
	b, err := bodies(l.Stream, l.MaxTokens)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	jl, err := os.CreateTemp(s.cl.tmp, name+"-requests-*.jsonl")
	if err != nil {
		p.Err = err.Error()
		return p
	}
	defer os.Remove(jl.Name())
	defer jl.Close()
	st := loadgen.Stage{Name: name, Duration: l.Duration, Concurrency: l.Concurrency}
	plan := timeline.StagePlan{Name: name, Duration: l.Duration, Concurrency: l.Concurrency}
	if l.Concurrency == 0 {
		st.Schedule = loadgen.Constant(l.Rate, l.Duration)
		plan.RateFrom, plan.RateTo = l.Rate, l.Rate
	}
	jw := bufio.NewWriterSize(jl, 256<<10) // as the run directory's requests.jsonl
	rec := record.New(jw, timeline.New(timeline.Config{Interval: 5 * time.Second, Stages: []timeline.StagePlan{plan}}), []string{"profile"}, nil)
	epoch := time.Now()
	gen, err := loadgen.New(loadgen.Config{
		URL: srv.URL(), Bodies: b, MaxInFlight: max(maxInFlight, l.Concurrency),
		Timeout: l.Timeout, Epoch: epoch,
	}, rec.Add)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	p.File = filepath.Join(s.opt.profile, name+"."+kind+".pprof")
	f, err := os.Create(p.File)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	defer f.Close()
	runtime.GC()
	cpu0 := sysres.CPU()
	heapDone := make(chan error, 1)
	if kind == "cpu" {
		if err := pprof.StartCPUProfile(f); err != nil {
			p.Err = err.Error()
			return p
		}
	} else {
		// The heap while every stream is open: near the end of the hold.
		go func() {
			select {
			case <-ctx.Done():
				heapDone <- ctx.Err()
			case <-time.After(l.Duration * 8 / 10):
				// A GC first: the heap profile shows the heap as of the last
				// one, and idle held streams allocate too little to start one.
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				rss, _ := sysres.RSS()
				p.Mem = heapNote(l.Duration*8/10, int64(runtime.NumGoroutine()), gen.Live().InFlight, &ms, rss)
				heapDone <- pprof.Lookup("heap").WriteTo(f, 0)
			}
		}()
	}
	runErr := gen.Run(ctx, 0, st)
	wctx, cancel := context.WithTimeout(ctx, l.Timeout+30*time.Second)
	if err := gen.Wait(wctx); err != nil {
		gen.Abort()
		_ = gen.Wait(context.Background())
	}
	cancel()
	if kind == "cpu" {
		pprof.StopCPUProfile()
	} else if err := <-heapDone; err != nil && runErr == nil {
		runErr = err
	}
	p.CPU = sysres.CPU() - cpu0
	_ = rec.Close(jw.Flush)
	live := gen.Live()
	p.Requests, p.Errors = live.Done, live.Errors
	if runErr != nil {
		p.Err = runErr.Error()
		return p
	}
	_ = f.Close()
	p.TopFile = filepath.Join(s.opt.profile, name+"."+kind+".top.txt")
	args := []string{"tool", "pprof", "-top", "-nodecount=40"}
	if kind == "heap" {
		args = append(args, "-sample_index=inuse_space")
	}
	out, err := exec.Command("go", append(args, p.File)...).CombinedOutput()
	if err != nil {
		p.Err = fmt.Sprintf("go tool pprof: %v: %s", err, lastLine(string(out)))
		return p
	}
	_ = os.WriteFile(p.TopFile, out, 0o644)
	p.Top = topLines(string(out), 22)
	return p
}

// label is a profiled load, as its heading shows it.
func (l load) label() string {
	if l.Concurrency > 0 {
		return fmt.Sprintf("%s streams held for %s", thousands(int64(l.Concurrency)), l.Duration)
	}
	return fmt.Sprintf("%s for %s, stream %t, max_tokens %d", fmtRate(l.Rate), l.Duration, l.Stream, l.MaxTokens)
}

// heapNote is the runtime's memory figures when the heap profile is taken.
func heapNote(at time.Duration, goroutines, inFlight int64, ms *runtime.MemStats, rss int64) string {
	return fmt.Sprintf("at %s into the hold: %s goroutines, %s requests in flight; heap in use %.0f MB, goroutine stacks %.0f MB, runtime total from the OS (Sys) %.0f MB; process RSS %.0f MB (heap spans count whole, RSS only the pages touched: a 32 KiB read buffer that holds a few hundred bytes costs one page)",
		at, thousands(goroutines), thousands(inFlight), float64(ms.HeapInuse)/1e6, float64(ms.StackInuse)/1e6, float64(ms.Sys)/1e6, float64(rss)/1e6)
}

// topLines keeps pprof -top's header and its first n rows.
func topLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	var out []string
	rows := -1
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "flat") {
			rows = 0
			out = append(out, l)
			continue
		}
		if rows < 0 {
			if strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Duration:") || strings.HasPrefix(l, "Showing") {
				out = append(out, l)
			}
			continue
		}
		if rows < n {
			out = append(out, l)
			rows++
		}
	}
	return strings.Join(out, "\n")
}
