package main

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/timeline"
)

// sampleReport is a small scale-out: waiting climbs, desired and ready
// follow, then everything returns.
func sampleReport() *timeline.Report {
	series := []measure.Series{{Name: "waiting", Query: "q"}, {Name: "desired", Query: "q"}, {Name: "ready", Query: "q"}}
	tl := timeline.New(timeline.Config{Interval: time.Second, Series: series, Threshold: 5,
		Stages: []timeline.StagePlan{{Name: "ramp", Plan: "1/s→10/s for 20s", Duration: 20 * time.Second, RateFrom: 1, RateTo: 10}}})
	tl.StageStarted(0, 0)
	for i := range 100 {
		at := time.Duration(i) * 200 * time.Millisecond
		tl.AddRequest(&measure.Request{Sent: at, Scheduled: at, TTFT: time.Duration(50+i*10) * time.Millisecond,
			E2E: time.Second + time.Duration(i*10)*time.Millisecond, OutputTokens: 20, Events: 20, Status: 200})
	}
	tl.StageEnded(0, 20*time.Second, "duration")
	tl.LoadStopped(20*time.Second, "")
	for i := range 40 {
		w, d, r := 0, 1, 1
		switch {
		case i >= 5 && i < 25:
			w, d = 3*(i-4), 3
			if i > 9 {
				r = 3
			}
		}
		tl.AddSample(measure.Sample{At: time.Duration(i) * time.Second, Values: []measure.Value{{V: float64(w)}, {V: float64(d)}, {V: float64(r)}}})
	}
	return tl.Report(40*time.Second, timeline.Meta{Scenario: "html", Started: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)})
}

// The report page renders in a real browser: headless Chromium runs its
// script (the charts exist in the DOM) and paints it (a screenshot with
// the charts' colors in it).
func TestReportHTMLRendersInChromium(t *testing.T) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		needTool(t, "chromium", "SCALEOUT_REQUIRE_CHROMIUM")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := timeline.WriteHTML(f, sampleReport(), run.HTMLAssets()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// The page needs no network: it loads nothing from anywhere.
	raw, _ := os.ReadFile(page)
	for _, ref := range []string{`src="`, `href="`, "url(", "@import", "fetch("} {
		if strings.Contains(string(raw), ref) {
			t.Errorf("report.html loads a resource (%s)", ref)
		}
	}
	chrome := func(args ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + filepath.Join(dir, "profile"), "--virtual-time-budget=5000"}
		out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return out
	}
	dom := string(chrome("--dump-dom", "file://"+page))
	if n := strings.Count(dom, `class="uplot`); n != 5 {
		t.Errorf("the page drew %d charts, want 5 (load, queue, replicas, latency, percentiles)", n)
	}
	for _, want := range []string{"verdict: NONE", "desired 1→3", "time to intent"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	shot := filepath.Join(dir, "shot.png")
	chrome("--window-size=1280,2000", "--screenshot="+shot, "file://"+page)
	pf, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatal(err)
	}
	if colors := distinctColors(img); colors < 50 {
		t.Errorf("the screenshot has %d colours: the charts were not painted", colors)
	}
}

func distinctColors(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 12, g >> 12, bl >> 12}] = true
		}
	}
	return len(seen)
}
