//go:build linux

package main

// The loopback server: a minimal HTTP/1.1 server that answers like a vLLM
// gateway with pre-rendered bytes. It runs in its own process (the perf
// program re-executes itself with -serve) so its CPU is never counted as a
// client's. It is written against the raw connection rather than net/http
// so that it costs far less per request than either client: no header maps,
// no JSON encoding, one write per response when there is no token delay.

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// serveConfig is what the server answers.
type serveConfig struct {
	Addr       string        // listen address; 127.0.0.1:0 picks a port
	Tokens     int           // content events per stream, one token each
	TokenDelay time.Duration // pause between stream events; 0: the whole stream in one write
	Prompt     int           // prompt_tokens in usage
}

// The model the server serves.
const serveModel = "perf"

// responses are the pre-rendered answers.
type responses struct {
	json     []byte   // a whole non-streamed 200 answer (head and body)
	models   []byte   // a whole GET /v1/models answer
	notFound []byte   // a whole 404 answer
	bad      []byte   // a whole 400 answer (then the connection closes)
	stream   []byte   // a whole streamed answer (head, every chunk, terminator): one write
	first    []byte   // the streamed answer's head and first event, for the delayed stream
	events   [][]byte // each content event as one HTTP chunk, for the delayed stream
	tail     []byte   // usage chunk, [DONE] chunk and the terminating chunk
}

// chunk frames b as one HTTP/1.1 chunk.
func httpChunk(b []byte) []byte {
	out := strconv.AppendInt(nil, int64(len(b)), 16)
	out = append(out, "\r\n"...)
	out = append(out, b...)
	return append(out, "\r\n"...)
}

func whole(status, ctype string, body []byte) []byte {
	h := fmt.Sprintf("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", status, ctype, len(body))
	return append([]byte(h), body...)
}

// render builds every answer once.
func render(cfg serveConfig) *responses {
	const id = `"id":"cmpl-perf","object":"text_completion","created":1700000000,"model":"` + serveModel + `"`
	r := &responses{}
	body := fmt.Sprintf(`{%s,"choices":[{"index":0,"text":" tok","logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":1}}`,
		id, cfg.Prompt, cfg.Prompt+1)
	r.json = whole("200 OK", "application/json", []byte(body))
	r.models = whole("200 OK", "application/json", []byte(`{"object":"list","data":[{"id":"`+serveModel+`","object":"model","created":1700000000,"owned_by":"perf","root":"`+serveModel+`","max_model_len":4096}]}`))
	r.notFound = whole("404 Not Found", "application/json", []byte(`{"error":{"message":"not found","type":"NotFoundError","param":null,"code":404}}`))
	r.bad = whole("400 Bad Request", "application/json", []byte(`{"error":{"message":"bad request","type":"BadRequestError","param":null,"code":400}}`))

	head := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := 0; i < cfg.Tokens; i++ {
		finish := "null"
		if i == cfg.Tokens-1 {
			finish = `"length"`
		}
		ev := fmt.Sprintf("data: {%s,\"choices\":[{\"index\":0,\"text\":\" tok\",\"logprobs\":null,\"finish_reason\":%s,\"stop_reason\":null}],\"usage\":null}\n\n", id, finish)
		r.events = append(r.events, httpChunk([]byte(ev)))
	}
	usage := fmt.Sprintf("data: {%s,\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n",
		id, cfg.Prompt, cfg.Prompt+cfg.Tokens, cfg.Tokens)
	r.tail = append(httpChunk([]byte(usage)), httpChunk([]byte("data: [DONE]\n\n"))...)
	r.tail = append(r.tail, "0\r\n\r\n"...)
	r.first = append(append([]byte(nil), head...), r.events[0]...)
	r.stream = append([]byte(nil), head...)
	for _, e := range r.events {
		r.stream = append(r.stream, e...)
	}
	r.stream = append(r.stream, r.tail...)
	return r
}

// serverStats are the counters GET /stats reports.
type serverStats struct {
	requests, streams, conns atomic.Int64
	open, peakOpen           atomic.Int64 // streams being written now, and the most at once
}

func (s *serverStats) streamOpened() {
	n := s.open.Add(1)
	for {
		p := s.peakOpen.Load()
		if n <= p || s.peakOpen.CompareAndSwap(p, n) {
			return
		}
	}
}

type server struct {
	cfg   serveConfig
	r     *responses
	stats serverStats
}

// serveMain is the -serve mode: listen, print "listening ADDR" on stdout,
// serve until stdin reaches EOF (the parent closed it or died).
func serveMain(args []string) error {
	fs := flag.NewFlagSet("scaleout-perf -serve", flag.ContinueOnError)
	var cfg serveConfig
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "listen address")
	fs.IntVar(&cfg.Tokens, "tokens", 64, "content events per stream")
	fs.DurationVar(&cfg.TokenDelay, "token-delay", 0, "pause between stream events (0: one write)")
	fs.IntVar(&cfg.Prompt, "prompt", 8, "prompt_tokens reported in usage")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Tokens < 1 {
		return errors.New("-tokens: want 1 or more")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil || (host != "127.0.0.1" && host != "localhost") {
		return fmt.Errorf("-addr %q: the perf server only listens on 127.0.0.1", cfg.Addr)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	s := &server{cfg: cfg, r: render(cfg)}
	fmt.Printf("listening %s\n", ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	var lastErr time.Time
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			// Out of file descriptors and the like: back off and go on,
			// saying so once a second at most.
			if time.Since(lastErr) > time.Second {
				fmt.Fprintf(os.Stderr, "perf server: accept: %v\n", err)
				lastErr = time.Now()
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go s.conn(c)
	}
}

// request is what the server needs from one request.
type request struct {
	route  route
	length int
	close  bool
	stream bool
}

// route is what a request asks for.
type route int

const (
	routeNotFound route = iota
	routeCompletions
	routeModels
	routeStats
)

// routeOf names the route of a method and path.
func routeOf(method, path []byte) route {
	switch {
	case string(method) == "POST" && string(path) == "/v1/completions":
		return routeCompletions
	case string(method) == "GET" && string(path) == "/v1/models":
		return routeModels
	case string(method) == "GET" && string(path) == "/stats":
		return routeStats
	}
	return routeNotFound
}

var errBadRequest = errors.New("bad request")

// conn serves one keep-alive connection, one request at a time.
func (s *server) conn(c net.Conn) {
	s.stats.conns.Add(1)
	defer c.Close()
	br := bufio.NewReaderSize(c, 4<<10)
	var body []byte
	for {
		req, err := readRequest(br, &body)
		if err != nil {
			if errors.Is(err, errBadRequest) {
				_, _ = c.Write(s.r.bad)
			}
			return
		}
		s.stats.requests.Add(1)
		if err := s.answer(c, req); err != nil || req.close {
			return
		}
	}
}

// readRequest reads one request's head and body. body is reused between
// requests of a connection.
func readRequest(br *bufio.Reader, body *[]byte) (request, error) {
	var req request
	line, err := br.ReadSlice('\n')
	if err != nil {
		return req, err
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return req, errBadRequest
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return req, errBadRequest
	}
	// line is only valid until the next read.
	req.route = routeOf(line[:sp1], rest[:sp2])
	if bytes.HasPrefix(rest[sp2+1:], []byte("HTTP/1.0")) {
		req.close = true
	}
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return req, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 {
			return req, errBadRequest
		}
		name, value := h[:colon], bytes.TrimSpace(h[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 || n > 1<<20 {
				return req, errBadRequest
			}
			req.length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return req, errBadRequest // no client here sends chunked bodies
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				req.close = true
			}
		}
	}
	if cap(*body) < req.length {
		*body = make([]byte, req.length)
	}
	b := (*body)[:req.length]
	if _, err := io.ReadFull(br, b); err != nil {
		return req, err
	}
	req.stream = isStream(b)
	return req, nil
}

// isStream tells whether a request body asks for a stream: "stream":true,
// with or without a space.
func isStream(b []byte) bool {
	i := bytes.Index(b, []byte(`"stream"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(b[i+len(`"stream"`):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(rest[1:], " \t\r\n"), []byte("true"))
}

func (s *server) answer(c net.Conn, req request) error {
	switch req.route {
	case routeCompletions:
		if !req.stream {
			_, err := c.Write(s.r.json)
			return err
		}
		return s.writeStream(c)
	case routeModels:
		_, err := c.Write(s.r.models)
		return err
	case routeStats:
		body := fmt.Sprintf(`{"requests":%d,"streams":%d,"conns":%d,"open_streams":%d,"peak_open_streams":%d}`,
			s.stats.requests.Load(), s.stats.streams.Load(), s.stats.conns.Load(), s.stats.open.Load(), s.stats.peakOpen.Load())
		_, err := c.Write(whole("200 OK", "application/json", []byte(body)))
		return err
	}
	_, err := c.Write(s.r.notFound)
	return err
}

// writeStream writes one SSE stream: all at once without a token delay,
// otherwise the head and first event at once, then one event per delay.
func (s *server) writeStream(c net.Conn) error {
	s.stats.streams.Add(1)
	s.stats.streamOpened()
	defer s.stats.open.Add(-1)
	if s.cfg.TokenDelay <= 0 {
		_, err := c.Write(s.r.stream)
		return err
	}
	if _, err := c.Write(s.r.first); err != nil {
		return err
	}
	for _, ev := range s.r.events[1:] {
		time.Sleep(s.cfg.TokenDelay)
		if _, err := c.Write(ev); err != nil {
			return err
		}
	}
	_, err := c.Write(s.r.tail)
	return err
}
