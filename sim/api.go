package sim

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes is the gateway (the OpenAI API of vLLM), /metrics and /admin/*.
func (f *Fleet) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", f.handleModels)
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { f.handleCompletion(w, r, false) })
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { f.handleCompletion(w, r, true) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(f.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	mux.HandleFunc("GET /admin/state", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, f.State()) })
	// In external mode the cluster owns the replicas and the pause: the
	// admin actions answer 409.
	external := func(w http.ResponseWriter) {
		writeError(w, &apiError{http.StatusConflict, "ConflictError", errExternal.Error()})
	}
	for action, paused := range map[string]bool{"pause": true, "unpause": false} {
		mux.HandleFunc("POST /admin/"+action, func(w http.ResponseWriter, r *http.Request) {
			if f.External() {
				external(w)
				return
			}
			f.SetPaused(paused)
			writeJSON(w, http.StatusOK, f.State())
		})
	}
	mux.HandleFunc("POST /admin/scale", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("replicas"), 10, 32)
		if err == nil {
			err = f.Scale(int32(n))
		}
		if errors.Is(err, errExternal) {
			external(w)
			return
		}
		if err != nil {
			writeError(w, &apiError{http.StatusBadRequest, "BadRequestError", "want ?replicas=N with N in 0..1000: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, f.State())
	})
	// The admin actions change the fleet: POST only, and a GET says so
	// with the command that works (the mux alone would answer a bare 405).
	mux.HandleFunc("/admin/{action}", func(w http.ResponseWriter, r *http.Request) {
		switch a := r.PathValue("action"); a {
		case "pause", "unpause", "scale":
			w.Header().Set("Allow", http.MethodPost)
			example := "/admin/" + a
			if a == "scale" {
				example += "?replicas=N"
			}
			writeError(w, &apiError{http.StatusMethodNotAllowed, "MethodNotAllowed",
				fmt.Sprintf("/admin/%s changes the fleet: POST only (curl -X POST 'http://%s%s')", a, r.Host, example)})
		default:
			writeError(w, &apiError{http.StatusNotFound, "NotFoundError", "no /admin/" + a + " (there are GET /admin/state and POST /admin/pause, /admin/unpause, /admin/scale?replicas=N)"})
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// apiError is an error the way vLLM answers one:
// {"error":{"message","type","param","code"}}.
type apiError struct {
	status int
	typ    string
	msg    string
}

func writeError(w http.ResponseWriter, e *apiError) {
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    int     `json:"code"`
	}
	writeJSON(w, e.status, struct {
		Error body `json:"error"`
	}{body{Message: e.msg, Type: e.typ, Code: e.status}})
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "BadRequestError", fmt.Sprintf(format, args...)}
}

func (f *Fleet) handleModels(w http.ResponseWriter, r *http.Request) {
	type model struct {
		ID          string  `json:"id"`
		Object      string  `json:"object"`
		Created     int64   `json:"created"`
		OwnedBy     string  `json:"owned_by"`
		Root        string  `json:"root"`
		Parent      *string `json:"parent"`
		MaxModelLen int     `json:"max_model_len"`
	}
	writeJSON(w, http.StatusOK, struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", []model{{
		ID: f.cfg.Model, Object: "model", Created: f.clk.Now().Unix(), OwnedBy: "vllm",
		Root: f.cfg.Model, MaxModelLen: f.cfg.MaxModelLen,
	}}})
}

// apiRequest is the part of an OpenAI completion or chat request the sim
// reads; other fields are accepted and ignored.
type apiRequest struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            []apiMessage    `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	IgnoreEOS bool `json:"ignore_eos"`
}

type apiMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// request is a validated completion request.
type request struct {
	chat         bool
	prompt       int // prompt tokens
	maxTokens    int
	stream       bool
	includeUsage bool
	ignoreEOS    bool
}

// parse validates a request as vLLM does, in its order: the body, the
// model (404), the prompt, max_tokens, then the context length (400, streamed
// or not).
func (f *Fleet) parse(r *http.Request, chat bool) (request, *apiError) {
	var in apiRequest
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20)).Decode(&in); err != nil {
		return request{}, badRequest("the request body is not a JSON completion request: %v", err)
	}
	if in.Model != "" && in.Model != f.cfg.Model {
		return request{}, &apiError{http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", in.Model)}
	}
	rq := request{chat: chat, stream: in.Stream, ignoreEOS: in.IgnoreEOS}
	rq.includeUsage = in.StreamOptions != nil && in.StreamOptions.IncludeUsage
	var err error
	if chat {
		if len(in.Messages) == 0 {
			return request{}, badRequest("messages: at least one message is required")
		}
		for i, m := range in.Messages {
			n, e := contentTokens(m.Content)
			if e != nil {
				return request{}, badRequest("messages[%d].content: %v", i, e)
			}
			rq.prompt += n
		}
	} else {
		if rq.prompt, err = promptTokens(in.Prompt); err != nil {
			return request{}, badRequest("prompt: %v", err)
		}
	}
	rq.prompt = max(rq.prompt, 1) // an empty prompt still holds the start token
	limit := f.cfg.MaxModelLen
	maxTok := in.MaxTokens
	if chat && in.MaxCompletionTokens != nil {
		maxTok = in.MaxCompletionTokens
	}
	if maxTok == nil {
		if rq.prompt >= limit {
			return request{}, badRequest("This model's maximum context length is %d tokens. However, your request has %d input tokens. Please reduce the length of the input messages.", limit, rq.prompt)
		}
		rq.maxTokens = limit - rq.prompt
	} else {
		rq.maxTokens = *maxTok
		if rq.maxTokens < 1 {
			return request{}, badRequest("max_tokens must be at least 1, got %d.", rq.maxTokens)
		}
		if rq.maxTokens > limit-rq.prompt { // prompt + max_tokens > limit, without overflow
			return request{}, badRequest("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion",
				limit, rq.prompt+rq.maxTokens, rq.prompt, rq.maxTokens)
		}
	}
	return rq, nil
}

// countWords counts whitespace-separated words: the sim's token count. A
// client that builds prompts from one-token words gets the same count the
// sim reports in usage.prompt_tokens.
func countWords(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			in = false
		default:
			if !in {
				n++
			}
			in = true
		}
	}
	return n
}

// promptTokens counts a completions prompt: a string (its words), a list of
// strings (all their words), a list of token ids (one each), or a list of
// such lists.
func promptTokens(raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("is required")
	}
	switch raw[0] {
	case '"':
		return stringTokens(raw)
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return 0, err
		}
		total := 0
		for _, it := range items {
			if len(it) > 0 && (it[0] == '-' || (it[0] >= '0' && it[0] <= '9')) {
				total++
				continue
			}
			n, err := promptTokens(it)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	}
	return 0, errors.New("want a string, a list of strings or a list of token ids")
}

// stringTokens counts the words of a JSON string.
func stringTokens(raw json.RawMessage) (int, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	return countWords(s), nil
}

// contentTokens counts a chat message's content: a string, or a list of
// parts whose "text" is counted; null counts 0.
func contentTokens(raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	switch raw[0] {
	case '"':
		return stringTokens(raw)
	case '[':
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return 0, err
		}
		n := 0
		for _, p := range parts {
			n += countWords(p.Text)
		}
		return n, nil
	}
	return 0, errors.New("want a string or a list of parts")
}

// handleCompletion is POST /v1/completions and /v1/chat/completions: route,
// queue, then generate.
func (f *Fleet) handleCompletion(w http.ResponseWriter, r *http.Request, chat bool) {
	arrived := f.clk.Now()
	f.stats.received.Add(1)
	rq, apiErr := f.parse(r, chat)
	if apiErr != nil {
		f.stats.invalid.Add(1)
		writeError(w, apiErr)
		return
	}
	seq := f.reqSeq.Add(1)
	seed := splitmix64(f.cfg.Seed*0x9e3779b97f4a7c15 + seq)
	out := rq.maxTokens
	if !rq.ignoreEOS {
		// A seeded length in 1..max_tokens stands in for the end-of-sequence token.
		out = 1 + int(splitmix64(seed^0x5bd1e995)%uint64(rq.maxTokens))
	}
	j := newJob(rq.prompt, rq.maxTokens, out, seed, arrived)
	switch err := f.submit(j); err {
	case nil:
	case errNoReplica:
		f.stats.unavailable.Add(1)
		writeError(w, &apiError{http.StatusServiceUnavailable, "ServiceUnavailableError",
			fmt.Sprintf("no ready replica serves model %s: the gateway has no endpoint", f.cfg.Model)})
		return
	default:
		f.stats.rejected.Add(1)
		writeError(w, &apiError{http.StatusTooManyRequests, "RateLimitError", "Failed to enqueue request, waiting requests queue is full"})
		return
	}
	ctx := r.Context()
	select {
	case <-j.admitted:
	case <-ctx.Done():
		if f.cancelWaiting(j) {
			return
		}
		// It got its slot meanwhile: generate finishes it as an abort.
	}
	f.generate(ctx, w, j, rq)
}

// vocab is the text the sim generates, one token a word as in the captures;
// no entry needs JSON escaping.
var vocab = []string{
	"The ", "rest ", "is ", "silence", ". ", "Testing", ", ", "testing ", "1", ", ", "2", ", ", "3", ". ",
	"To ", "be ", "or ", "not ", "to ", "be", ", ", "that ", "is ", "the ", "question", ". ",
}

func (j *job) word(i int) string { return vocab[(int(j.seed%uint64(len(vocab)))+i)%len(vocab)] }

// The fixed parts of the streamed chunks (the shapes of vLLM's, as
// captured); head is `data: {"id":…,"model":…,"object":…,"created":…,`.
const (
	tokPreCompl  = `"usage":null,"choices":[{"index":0,"finish_reason":null,"text":"`
	tokPostCompl = `"}]}` + "\n\n"
	tokPreChat   = `"usage":null,"choices":[{"index":0,"finish_reason":null,"delta":{"content":"`
	tokPostChat  = `"}}]}` + "\n\n"
	roleChat     = `"usage":null,"choices":[{"index":0,"finish_reason":null,"delta":{"role":"assistant"}}]}` + "\n\n"
	doneEvent    = "data: [DONE]\n\n"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// ids returns the response id and object names of a request.
func (j *job) id(chat bool) string {
	var u [16]byte
	a, b := splitmix64(j.seed), splitmix64(j.seed+1)
	for i := range 8 {
		u[i], u[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x50 // version 5, as the captures' ids
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	if chat {
		return "chatcmpl-" + string(s[:])
	}
	return "cmpl-" + string(s[:]) + "-0"
}

// generate runs j on its replica from its slot to its last token and writes
// the response: prefill until admittedAt+prefill, then one token an ITL (the
// ITL read from the replica's batch as each gap starts). Tokens whose
// deadline has passed go out back to back; the stream is flushed only before
// a wait and at the end, so zero TTFT and ITL cost no flush a token.
func (f *Fleet) generate(ctx context.Context, w http.ResponseWriter, j *job, rq request) {
	p := j.pod
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() { *bp = buf[:0]; bufPool.Put(bp) }()

	id := j.id(rq.chat)
	object := "text_completion"
	tokPre, tokPost := tokPreCompl, tokPostCompl
	if rq.chat {
		object = "chat.completion.chunk"
		tokPre, tokPost = tokPreChat, tokPostChat
	}
	created := f.clk.Now().Unix()
	var head []byte
	if rq.stream {
		head = fmt.Appendf(nil, `data: {"id":"%s","model":%s,"object":"%s","created":%d,`, id, f.model, object, created)
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK) // sent with the first flush: as the request leaves the queue
	}
	tokHead := append(append([]byte(nil), head...), tokPre...)
	rc := http.NewResponseController(w)
	var werr error
	emitted, batch := 0, 0
	var firstOut time.Time // when the first token began its way out (streams)
	write := func(flush bool) {
		if werr != nil {
			return
		}
		if f.onServed != nil && emitted > 0 && firstOut.IsZero() {
			firstOut = f.clk.Now() // before the write: no client reads it sooner
		}
		if len(buf) > 0 {
			_, werr = w.Write(buf)
			buf = buf[:0]
		}
		if flush && werr == nil {
			werr = rc.Flush()
		}
	}

	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	deadline := j.admittedAt.Add(f.prefill(j.prompt))
	aborted := false
	for emitted < j.out {
		if deadline.After(f.clk.Now()) {
			f.account(j, batch)
			batch = 0
			if rq.stream {
				write(true)
			}
			if werr != nil || f.sleepUntil(ctx, &timer, deadline) != nil {
				aborted = true
				break
			}
		}
		if emitted == 0 {
			p.m.firstToken(j.prompt, deadline.Sub(j.arrived))
			f.stats.promptTokens.Add(uint64(j.prompt))
			if rq.stream && rq.chat {
				buf = append(append(buf, head...), roleChat...)
			}
		}
		if rq.stream {
			buf = append(append(append(buf, tokHead...), j.word(emitted)...), tokPost...)
			if len(buf) >= 32<<10 {
				write(false)
			}
		}
		emitted++
		batch++
		if emitted < j.out {
			deadline = deadline.Add(itl(&f.cfg, int(p.nRunning.Load())))
		}
	}
	f.account(j, batch)

	end := deadline
	reason := reasonStop
	if aborted {
		end, reason = f.clk.Now(), reasonAbort
		if end.Before(j.admittedAt) {
			end = j.admittedAt
		}
	} else if j.out == j.maxTok {
		reason = reasonLength
	}
	var lastOut time.Time // when the end began its way out (read only for onServed)
	if !aborted {
		if rq.stream {
			buf = f.appendEpilogue(buf, head, rq, j, reasonNames[reason])
			if f.onServed != nil {
				lastOut = f.clk.Now()
			}
			write(true)
		} else {
			werr = f.writeCompletion(w, j, rq, id, created, reasonNames[reason])
		}
		if werr != nil { // the client went away before the end
			aborted, reason = true, reasonAbort
		}
	}
	if f.onServed != nil && rq.stream && !aborted {
		f.onServed(served{arrived: j.arrived, first: firstOut, last: lastOut})
	}
	p.m.done(reason, end.Sub(j.arrived))
	f.finish(j, end, aborted)
}

// account adds n generated tokens to the replica's KV cache and counters.
func (f *Fleet) account(j *job, n int) {
	if n == 0 {
		return
	}
	j.kv += int64(n)
	j.pod.kvTokens.Add(int64(n))
	j.pod.m.generated(n)
	f.stats.genTokens.Add(uint64(n))
}

// sleepUntil waits on the fleet's clock until deadline or ctx's end.
func (f *Fleet) sleepUntil(ctx context.Context, t *Timer, deadline time.Time) error {
	if !f.clk.Now().Before(deadline) {
		return nil
	}
	if *t == nil {
		*t = newTimerAt(f.clk, deadline)
	} else {
		resetAt(f.clk, *t, deadline)
	}
	select {
	case <-(*t).C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// appendEpilogue is the end of a stream: the finish_reason chunk, the usage
// chunk when asked for, and [DONE].
func (f *Fleet) appendEpilogue(buf, head []byte, rq request, j *job, reason string) []byte {
	buf = append(buf, head...)
	if rq.chat {
		buf = fmt.Appendf(buf, `"usage":null,"choices":[{"index":0,"finish_reason":"%s","delta":{}}]}`+"\n\n", reason)
	} else {
		buf = fmt.Appendf(buf, `"usage":null,"choices":[{"index":0,"finish_reason":"%s","text":""}]}`+"\n\n", reason)
	}
	if rq.includeUsage {
		buf = append(buf, head...)
		buf = fmt.Appendf(buf, `"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0}},"choices":[]}`+"\n\n",
			j.prompt, j.out, j.prompt+j.out)
	}
	return append(buf, doneEvent...)
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type choice struct {
	Index        int      `json:"index"`
	FinishReason string   `json:"finish_reason"`
	Text         *string  `json:"text,omitempty"`
	Message      *message `json:"message,omitempty"`
}

type completion struct {
	ID      string   `json:"id"`
	Model   string   `json:"model"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Usage   usage    `json:"usage"`
	Choices []choice `json:"choices"`
}

// writeCompletion is a non-streamed response, sent whole at the end.
func (f *Fleet) writeCompletion(w http.ResponseWriter, j *job, rq request, id string, created int64, reason string) error {
	text := make([]byte, 0, j.out*6)
	for i := range j.out {
		text = append(text, j.word(i)...)
	}
	s := string(text)
	c := completion{ID: id, Model: f.cfg.Model, Object: "text_completion", Created: created,
		Usage:   usage{PromptTokens: j.prompt, CompletionTokens: j.out, TotalTokens: j.prompt + j.out},
		Choices: []choice{{FinishReason: reason, Text: &s}}}
	if rq.chat {
		c.Object = "chat.completion"
		c.Choices[0].Text, c.Choices[0].Message = nil, &message{Role: "assistant", Content: s}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(append(b, '\n'))
	return err
}

// jsonString is s as a JSON string literal.
func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
