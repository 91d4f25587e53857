package run

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scaleout/scaleout/timeline"
)

// procUsage is this process's CPU time so far and its resident memory now.
func procUsage() (cpu time.Duration, rss int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				rss = pages * int64(os.Getpagesize())
			}
		}
	}
	return cpu, rss
}

// stageUsage measures what one stage cost the client.
type stageUsage struct {
	wall time.Time
	cpu  time.Duration
	cap  uint64
}

func startUsage(capReached uint64) stageUsage {
	cpu, _ := procUsage()
	return stageUsage{wall: time.Now(), cpu: cpu, cap: capReached}
}

func (u stageUsage) end(capReached uint64) *timeline.ClientUse {
	cpu, rss := procUsage()
	wall := time.Since(u.wall).Seconds()
	c := &timeline.ClientUse{CPUSeconds: timeline.Round3((cpu - u.cpu).Seconds()), RSSMB: timeline.Round3(float64(rss) / (1 << 20)),
		CapReached: int64(capReached - u.cap), Cores: runtime.GOMAXPROCS(0)}
	if wall > 0 {
		c.CPUCores = timeline.Round3((cpu - u.cpu).Seconds() / wall)
	}
	return c
}
