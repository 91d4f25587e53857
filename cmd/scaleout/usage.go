package main

import (
	"runtime"
	"time"

	"github.com/scaleout/scaleout/internal/sysres"
	"github.com/scaleout/scaleout/timeline"
)

// stageUsage measures what one stage cost the client.
type stageUsage struct {
	wall time.Time
	cpu  time.Duration
	cap  uint64
}

func startUsage(capReached uint64) stageUsage {
	return stageUsage{wall: time.Now(), cpu: sysres.CPU(), cap: capReached}
}

func (u stageUsage) end(capReached uint64) *timeline.ClientUse {
	cpu := sysres.CPU()
	rss, _ := sysres.RSS() // 0 where unknown: the text report then leaves it out
	wall := time.Since(u.wall).Seconds()
	c := &timeline.ClientUse{CPUSeconds: round3((cpu - u.cpu).Seconds()), RSSMB: round3(float64(rss) / (1 << 20)),
		CapReached: int64(capReached - u.cap), Cores: runtime.GOMAXPROCS(0)}
	if wall > 0 {
		c.CPUCores = round3((cpu - u.cpu).Seconds() / wall)
	}
	return c
}

func round3(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}
