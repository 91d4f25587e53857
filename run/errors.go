package run

import (
	"errors"
	"fmt"
)

// Class is what kind of failure an error is: the command maps it to an
// exit code.
type Class int

const (
	// CannotRun: the target, the observation or the run directory failed
	// (exit 3).
	CannotRun Class = iota
	// Usage: the scenario, a flag or a manifest is wrong (exit 2).
	Usage
)

// Error is a failure with its class.
type Error struct {
	Class Class
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error {
	return &Error{Class: Usage, Err: fmt.Errorf(format, args...)}
}

func cannotRun(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: CannotRun, Err: err}
}

// ErrInterrupted is returned when an interrupt came before anything was
// sent: there is nothing to report.
var ErrInterrupted = errors.New("interrupted before the load: nothing was sent")
