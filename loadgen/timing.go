package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/scaleout/scaleout/measure"
)

// The timing transport. One per stage; vegeta's workers call RoundTrip
// concurrently. Each call owns its measure.Request until it hands it to the
// sink, reads the whole response itself and gives vegeta an empty body, so
// vegeta buffers nothing and its Result is ignored: the record is the truth.

const seqHeader = "X-Vegeta-Seq"

// Read buffers: a stream is read into one pooled buffer and its lines are
// scanned in place. A line longer than the buffer grows it (one allocation,
// rare) up to maxLine; a non-streamed body may grow it up to maxJSONBody. An
// error body is read up to readBufSize, the rest drained.
const (
	readBufSize = 32 << 10
	maxLine     = 4 << 20
	maxJSONBody = 16 << 20
	maxMessage  = 200
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// getBuf takes a read buffer from the pool: at least readBufSize long.
func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

// putBuf puts bp back in the pool with buf, the buffer the reader ended with
// (it may have grown the one getBuf gave); one grown past 4 × readBufSize is
// dropped and bp keeps the buffer it had, so the pool holds no large ones.
func putBuf(bp *[]byte, buf []byte) {
	if cap(buf) <= 4*readBufSize {
		*bp = buf[:cap(buf)]
	}
	bufPool.Put(bp)
}

var errNoSeq = errors.New("loadgen: request without a valid " + seqHeader + " header (the timing transport only serves vegeta)")

// stage is one running stage: it is the vegeta Targeter's state and the
// timing RoundTripper. Fields other than the atomics are set before the
// attack starts and never change.
type stage struct {
	g        *Generator
	idx      int
	start    time.Time     // when the stage started (monotonic)
	startOff time.Duration // start − epoch
	epoch    time.Time
	sched    Schedule            // nil under closed loop
	global   func(uint64) uint64 // a shard's hit → its index in the whole stage; nil: the same
	du       time.Duration       // the stage's duration
	closed   atomic.Bool         // set when the stage stops sending: the targeter lets nothing through
	stop     chan struct{}       // closed by Stop
	stopOnce sync.Once
}

var _ http.RoundTripper = (*stage)(nil)

// RoundTrip sends one request of the stage with the body of its sequence
// number, reads the whole response, hands the record to the sink and returns
// the response with an empty body.
func (s *stage) RoundTrip(req *http.Request) (*http.Response, error) {
	g := s.g
	seq, err := strconv.ParseUint(req.Header.Get(seqHeader), 10, 64)
	if err != nil {
		return nil, errNoSeq
	}
	id := seq // the hit's index in the whole stage: a shard's own count maps to it
	if s.global != nil {
		id = s.global(seq)
	}
	ent := g.cfg.Bodies.entry(id)
	body := ent.render(s.idx, id) // the pool body with this request's id
	rec := &measure.Request{
		Stage: s.idx, Seq: id, Scheduled: -1,
		PromptTokens: -1, OutputTokens: -1,
		BytesOut: int64(len(body)),
	}
	if s.sched != nil {
		if at := s.sched.At(seq); at != never {
			rec.Scheduled = s.startOff + at
		}
	}

	// The request's context: the generator's abort context (Abort cancels
	// every request at once), with the request timeout as a deadline. The
	// context of vegeta's request never ends (http.NewRequest, and a client
	// without Timeout), so it is not carried over.
	ctx := g.abortCtx
	if g.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.Timeout)
		defer cancel()
	}
	out := req.WithContext(ctx)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }

	g.live.sent.Add(1)
	g.live.addInFlight()
	t0 := time.Now()
	rec.Sent = t0.Sub(s.epoch)
	resp, err := g.inner.RoundTrip(out)
	if err != nil {
		rec.E2E = time.Since(t0)
		rec.Class, rec.Message = g.classify(ctx, err)
		g.finish(rec)
		return nil, err
	}
	rec.Headers = time.Since(t0)
	rec.Status = resp.StatusCode
	switch {
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		g.readError(resp, rec, t0)
	case g.stream:
		g.readStream(ctx, resp.Body, rec, t0, ent.maxTokens)
	default:
		g.readJSON(ctx, resp.Body, rec, t0)
	}
	_ = resp.Body.Close()
	g.finish(rec)

	resp.Body = http.NoBody
	resp.ContentLength = 0
	resp.Request = req
	return resp, nil
}

// sse is the state of one stream being read.
type sse struct {
	rec   *measure.Request
	done  bool          // data: [DONE] seen
	last  time.Duration // arrival of the previous content event
	lines int
	c     chunk
}

// readStream reads an SSE body to its end. Lines are scanned in place in a
// pooled buffer; every content event read in one Read gets that Read's arrival
// time. Nothing allocates per event: the ITL slice is sized once from
// max_tokens (a stream has at most max_tokens content events).
func (g *Generator) readStream(ctx context.Context, body io.Reader, rec *measure.Request, t0 time.Time, maxTokens int) {
	bp := getBuf()
	buf := *bp
	defer func() { putBuf(bp, buf) }()
	if maxTokens > 1 {
		rec.ITL = make([]time.Duration, 0, maxTokens-1)
	}
	st := sse{rec: rec}
	var lastByte time.Duration
	r, w := 0, 0 // buf[r:w] holds bytes not yet consumed as lines
	var rerr error
	for {
		if r == w {
			r, w = 0, 0
		}
		if w == len(buf) {
			if r > 0 {
				w = copy(buf, buf[r:w])
				r = 0
			} else if len(buf) < maxLine {
				nb := make([]byte, 2*len(buf))
				copy(nb, buf[:w])
				buf = nb
			} else {
				st.fail(measure.StreamMalformed, "an SSE line longer than 4 MiB")
				rec.BytesIn += drain(body)
				break
			}
		}
		n, err := body.Read(buf[w:])
		if n > 0 {
			now := time.Since(t0)
			lastByte = now
			rec.BytesIn += int64(n)
			w += n
			for {
				j := bytes.IndexByte(buf[r:w], '\n')
				if j < 0 {
					break
				}
				st.line(buf[r:r+j], now)
				r += j + 1
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			} else if r < w { // a last line without its newline
				st.line(buf[r:w], lastByte)
			}
			break
		}
	}
	switch {
	case rerr != nil && !st.done:
		if c, m := g.ctxClass(ctx); c != measure.OK {
			st.fail(c, m+" after "+events(rec.Events))
		} else {
			st.fail(measure.StreamCut, "stream cut after "+events(rec.Events)+": "+oneLine([]byte(rerr.Error())))
		}
	case !st.done && rec.Class == measure.OK:
		if rec.BytesIn == 0 {
			st.fail(measure.StreamCut, "empty body: the stream ended before [DONE]")
		} else {
			st.fail(measure.StreamCut, "the stream ended before [DONE] after "+events(rec.Events))
		}
	}
	if rec.Class == measure.OK && lastByte > 0 {
		rec.E2E = lastByte
	} else {
		rec.E2E = time.Since(t0)
	}
}

// fail sets the request's class unless one is set already: the first
// problem is the one reported.
func (st *sse) fail(c measure.ErrClass, msg string) {
	if st.rec.Class == measure.OK {
		st.rec.Class, st.rec.Message = c, msg
	}
}

// line handles one SSE line (without its newline) that arrived at now.
func (st *sse) line(b []byte, now time.Duration) {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	st.lines++
	if len(b) == 0 || b[0] == ':' { // event boundary, comment (keep-alive)
		return
	}
	var payload []byte
	switch {
	case hasPrefix(b, "data:"):
		payload = b[5:]
		if len(payload) > 0 && payload[0] == ' ' {
			payload = payload[1:]
		}
	case hasPrefix(b, "event:"), hasPrefix(b, "id:"), hasPrefix(b, "retry:"):
		return
	case b[0] == '{' && st.rec.Events == 0 && st.lines == 1:
		// A JSON body where a stream was expected: an error answered with
		// 200, or a server that ignored "stream".
		if parseChunk(b, &st.c) && st.c.err {
			st.fail(measure.StreamError, errorMessage(&st.c, b))
		} else {
			st.fail(measure.StreamMalformed, "a JSON body where an SSE stream was expected")
		}
		return
	default:
		st.fail(measure.StreamMalformed, "not SSE: "+oneLine(b[:min(len(b), 60)]))
		return
	}
	if st.done {
		return
	}
	if string(payload) == "[DONE]" {
		st.done = true
		return
	}
	c := &st.c
	if !parseChunk(payload, c) {
		st.fail(measure.StreamMalformed, "malformed event: "+oneLine(payload[:min(len(payload), 60)]))
		return
	}
	rec := st.rec
	if c.err {
		st.fail(measure.StreamError, errorMessage(c, payload))
	}
	if c.content {
		rec.Events++
		if rec.Events == 1 {
			rec.TTFT = now
		} else {
			rec.ITL = append(rec.ITL, now-st.last)
		}
		st.last = now
	}
	if c.usage {
		rec.PromptTokens, rec.OutputTokens = c.prompt, c.completion
	}
}

// errorMessage is the one-line message of an error chunk (never empty).
func errorMessage(c *chunk, b []byte) string {
	if m := oneLine([]byte(c.message(b))); m != "" {
		return m
	}
	return "an error without a message"
}

// events says "1 content event", "3 content events".
func events(n int) string {
	if n == 1 {
		return "1 content event"
	}
	return strconv.Itoa(n) + " content events"
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// readJSON reads a non-streamed 2xx body and takes the usage from it. TTFT
// and Events stay 0: the first token is not observable without a stream.
func (g *Generator) readJSON(ctx context.Context, body io.Reader, rec *measure.Request, t0 time.Time) {
	bp := getBuf()
	buf := (*bp)[:0]
	defer func() { putBuf(bp, buf) }()
	var lastByte time.Duration
	var rerr error
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxJSONBody {
				rec.BytesIn = int64(len(buf)) + drain(body)
				rec.Class, rec.Message = measure.StreamMalformed, "response body over 16 MiB"
				rec.E2E = time.Since(t0)
				return
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		if n > 0 {
			buf = buf[:len(buf)+n]
			lastByte = time.Since(t0)
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	rec.BytesIn = int64(len(buf))
	var c chunk
	switch {
	case rerr != nil:
		if cl, m := g.ctxClass(ctx); cl != measure.OK {
			rec.Class, rec.Message = cl, m
		} else {
			rec.Class, rec.Message = measure.StreamCut, "body cut: "+oneLine([]byte(rerr.Error()))
		}
	case !parseChunk(buf, &c):
		rec.Class, rec.Message = measure.StreamMalformed, "the body is not a JSON object: "+oneLine(buf[:min(len(buf), 60)])
	case c.err:
		rec.Class, rec.Message = measure.StreamError, errorMessage(&c, buf)
	}
	if c.usage {
		rec.PromptTokens, rec.OutputTokens = c.prompt, c.completion
	}
	if rec.Class == measure.OK {
		rec.E2E = lastByte
	} else {
		rec.E2E = time.Since(t0)
	}
}

// readError reads a non-2xx body and keeps the server's message: error.message,
// a flat {"object":"error","message"}, {"detail"}, or the start of a text body.
func (g *Generator) readError(resp *http.Response, rec *measure.Request, t0 time.Time) {
	bp := getBuf()
	defer putBuf(bp, *bp)
	buf := (*bp)[:readBufSize] // the same limit whatever size the pooled buffer grew to
	n, _ := io.ReadFull(resp.Body, buf)
	rec.BytesIn = int64(n) + drain(resp.Body)
	rec.E2E = time.Since(t0)
	rec.Class = measure.HTTPClass(resp.StatusCode)
	b := bytes.TrimSpace(buf[:n])
	var msg string
	var c chunk
	if len(b) > 0 && b[0] == '{' && parseChunk(b, &c) {
		msg = c.message(b)
	}
	if msg == "" && len(b) > 0 && b[0] != '{' && b[0] != '[' {
		msg = string(b[:min(len(b), 2*maxMessage)]) // oneLine drops invalid bytes and cuts it
	}
	if msg == "" {
		msg = resp.Status
	}
	rec.Message = oneLine([]byte(msg))
}

// drain reads the rest of a body (up to 1 MiB, so the connection can be
// reused) and returns how many bytes it read.
func drain(r io.Reader) int64 {
	n, _ := io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	return n
}

// ctxClass tells whether the request ended because of Abort or of its
// timeout.
func (g *Generator) ctxClass(ctx context.Context) (measure.ErrClass, string) {
	switch {
	case g.abortCtx.Err() != nil:
		var c *abortCause
		if errors.As(context.Cause(g.abortCtx), &c) {
			return c.class, c.msg
		}
		return measure.Canceled, "aborted"
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return measure.Timeout, "request timeout " + fmtDuration(g.cfg.Timeout) + " passed"
	case ctx.Err() != nil:
		return measure.Canceled, "canceled"
	}
	return measure.OK, ""
}

// classify names a transport error (no response arrived). The message never
// holds the URL or a header: only the inner error's text.
func (g *Generator) classify(ctx context.Context, err error) (measure.ErrClass, string) {
	if c, m := g.ctxClass(ctx); c != measure.OK {
		return c, m
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := oneLine([]byte(err.Error()))
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return measure.DNS, msg
	case errors.Is(err, syscall.ECONNREFUSED):
		return measure.ConnectRefused, msg
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.EADDRNOTAVAIL):
		return measure.ClientLimit, msg
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return measure.ConnectReset, msg
	}
	return measure.Other, msg
}

// oneLine makes a short single line of b: control characters and runs of
// white space become one space, and it is cut to about 200 bytes at a rune
// boundary.
func oneLine(b []byte) string {
	out := make([]byte, 0, min(len(b), maxMessage+4))
	space := false
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r < 0x20 || r == 0x7f || r == ' ' || r == utf8.RuneError && size == 1 {
			space = true
			continue
		}
		if space && len(out) > 0 {
			out = append(out, ' ')
		}
		space = false
		if len(out)+size > maxMessage {
			out = append(out, "…"...)
			break
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}
