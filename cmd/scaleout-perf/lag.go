//go:build linux

package main

import (
	"bufio"
	"errors"
	"io"
	"math"
	"os"
	"sort"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// sendLagP99 is the 99th percentile of how late each hit of a constant-rate
// attack went out against its schedule, in milliseconds. Hit seq is due at
// start + seq/rate; vegeta does not record its start, so start is the
// earliest one the sends allow (min over hits of sent − seq/rate), which
// makes every lag ≥ 0 and the earliest-on-time hit's lag 0. It returns −1
// when there is nothing to measure.
func sendLagP99(seqs []uint64, sent []time.Time, rate float64) float64 {
	if len(seqs) == 0 || len(seqs) != len(sent) || rate <= 0 {
		return -1
	}
	period := float64(time.Second) / rate
	// Offsets from the first send, to stay in float64's exact range.
	base := sent[0]
	off := make([]float64, len(seqs))
	start := math.Inf(1)
	for i := range seqs {
		off[i] = float64(sent[i].Sub(base)) - float64(seqs[i])*period
		start = math.Min(start, off[i])
	}
	for i := range off {
		off[i] -= start
	}
	sort.Float64s(off)
	k := int(math.Ceil(0.99*float64(len(off)))) - 1
	return off[max(k, 0)] / float64(time.Millisecond)
}

// vegetaSendLag reads a vegeta results file (its default gob encoding) and
// returns the send lag p99 of a constant-rate attack, in milliseconds.
func vegetaSendLag(path string, rate float64) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	dec := vegeta.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	var seqs []uint64
	var sent []time.Time
	for {
		var r vegeta.Result
		if err := dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return -1, err
		}
		seqs = append(seqs, r.Seq)
		sent = append(sent, r.Timestamp)
	}
	return sendLagP99(seqs, sent, rate), nil
}
