//go:build race

package sim

// raceEnabled: the race detector slows every goroutine switch and syscall
// several-fold, so timing bars are looser (and say so) under -race.
const raceEnabled = true
