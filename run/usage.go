package run

import (
	"runtime"
	"time"

	"github.com/scaleout/scaleout/internal/sysres"
	"github.com/scaleout/scaleout/timeline"
)

// stageUsage measures what one stage cost the client.
type stageUsage struct {
	wall   time.Time
	cpu    time.Duration
	wait   time.Duration // CPU wait so far (sysres.CPUWait)
	waitOK bool
	cap    uint64
}

func startUsage(capReached uint64) stageUsage {
	wait, ok := sysres.CPUWait()
	return stageUsage{wall: time.Now(), cpu: sysres.CPU(), wait: wait, waitOK: ok, cap: capReached}
}

func (u stageUsage) end(capReached uint64) *timeline.ClientUse {
	cpu := sysres.CPU()
	rss, _ := sysres.RSS() // 0 where unknown: the text report then leaves it out
	wall := time.Since(u.wall).Seconds()
	c := &timeline.ClientUse{CPUSeconds: timeline.Round3((cpu - u.cpu).Seconds()), RSSMB: timeline.Round3(float64(rss) / (1 << 20)),
		CapReached: int64(capReached - u.cap), Cores: runtime.GOMAXPROCS(0)}
	if wall > 0 {
		c.CPUCores = timeline.Round3((cpu - u.cpu).Seconds() / wall)
	}
	// A thread that exited took its wait with it: never below 0.
	if wait, ok := sysres.CPUWait(); ok && u.waitOK {
		c.CPUWaitS = new(timeline.Round3(max(wait-u.wait, 0).Seconds()))
	}
	return c
}
