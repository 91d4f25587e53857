// Package measure holds the plain data that crosses package lines: what the
// load generator records of one request, what the watcher samples from
// Prometheus, and the latency distribution both the timeline and the live
// progress summarise with.
//
// Every time in this package is an offset from the run's epoch (the instant
// the load starts, taken from the monotonic clock), so load, samples and
// events share one clock.
package measure

import (
	"fmt"
	"time"
)

// ErrClass names why a request failed. The zero value means it succeeded.
type ErrClass string

// The error classes. HTTP errors use HTTPClass (http_429, http_503, ...).
const (
	OK              ErrClass = ""
	ConnectRefused  ErrClass = "connect_refused"  // nothing listens at the target
	ConnectReset    ErrClass = "connect_reset"    // the connection broke before a response
	DNS             ErrClass = "dns"              // the target's host does not resolve
	Timeout         ErrClass = "timeout"          // request_timeout passed first
	StreamError     ErrClass = "stream_error"     // the server sent an error event inside the stream
	StreamMalformed ErrClass = "stream_malformed" // the body is not the SSE or JSON it should be
	StreamCut       ErrClass = "stream_cut"       // the stream ended before [DONE]
	Canceled        ErrClass = "canceled"         // aborted by the user (second Ctrl-C)
	ClientLimit     ErrClass = "client_limit"     // the client ran out of a resource (file descriptors)
	Other           ErrClass = "other"            // anything else; the message says what
)

// HTTPClass is the class of a response with a non-2xx status.
func HTTPClass(status int) ErrClass { return ErrClass(fmt.Sprintf("http_%d", status)) }

// Request is what the load generator knows of one request once it has ended.
// Durations after Sent are measured from Sent; zero means "did not happen".
type Request struct {
	Stage     int           // index of the stage that sent it
	Seq       uint64        // sequence number within the stage (vegeta's X-Vegeta-Seq; a shard's is the hit's index in the whole stage)
	Scheduled time.Duration // when the pacer meant it to go; -1 under closed-loop concurrency
	Sent      time.Duration // when it went out
	Headers   time.Duration // response headers arrived (not the first token: servers may hold headers)
	TTFT      time.Duration // the first content event arrived
	E2E       time.Duration // the last byte arrived, or the request failed
	Events    int           // content events received (one event may carry several tokens)

	// ITL holds the gaps between consecutive content events, in arrival order.
	// The slice belongs to the record; consumers that keep it must copy it.
	ITL []time.Duration

	PromptTokens int // from the server's usage; -1 when it sent none
	OutputTokens int // from the server's usage; -1 when it sent none

	Status   int      // HTTP status, 0 when no response arrived
	Class    ErrClass // OK on success
	Message  string   // the server's error message or the transport error, for failures
	BytesIn  int64
	BytesOut int64
}

// Failed reports whether the request did not succeed.
func (r *Request) Failed() bool { return r.Class != OK }

// Done is the offset at which the request ended.
func (r *Request) Done() time.Duration { return r.Sent + r.E2E }

// Lag is how late the request went out against its schedule (0 without one).
func (r *Request) Lag() time.Duration {
	if r.Scheduled < 0 || r.Sent < r.Scheduled {
		return 0
	}
	return r.Sent - r.Scheduled
}

// TPOT is the time per output token after the first: (e2e − ttft) / (tokens − 1).
// It is zero when it cannot be computed (no first token, fewer than two tokens).
func (r *Request) TPOT() time.Duration {
	if r.TTFT <= 0 || r.OutputTokens < 2 || r.E2E < r.TTFT {
		return 0
	}
	return (r.E2E - r.TTFT) / time.Duration(r.OutputTokens-1)
}

// TokensPerEvent is the mean number of output tokens each content event
// carried (1 when the server sent no usage or one token an event).
func (r *Request) TokensPerEvent() float64 {
	if r.Events <= 0 || r.OutputTokens <= r.Events {
		return 1
	}
	return float64(r.OutputTokens) / float64(r.Events)
}

// Series is one named observation: a PromQL expression evaluated on every sample.
type Series struct {
	Name  string
	Query string
	// Source names where the values come from ("prometheus", "scrape",
	// "kubernetes API", "computed"); "" when the run did not say.
	Source string
}

// Value is one series at one sample: a number, or a gap with its reason.
type Value struct {
	V   float64
	Gap string // why there is no value ("connection refused", "no series", ...); "" when V holds
}

// OK reports whether the value holds a number.
func (v Value) OK() bool { return v.Gap == "" }

// Sample is every series taken together at one instant.
type Sample struct {
	At     time.Duration // offset from the epoch at which the values were evaluated
	Values []Value       // one per series, in the order the watcher was given them
}
