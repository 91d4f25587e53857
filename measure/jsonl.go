package measure

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// RequestLine is one line of requests.jsonl: a finished request with its
// times in milliseconds from the run's epoch (sched_ms, sent_ms) or from its
// send (the others). Absent values are omitted.
type RequestLine struct {
	Stage        string   `json:"stage"`
	Seq          uint64   `json:"seq"`
	SchedMS      *float64 `json:"sched_ms,omitempty"`
	SentMS       float64  `json:"sent_ms"`
	HeadersMS    *float64 `json:"headers_ms,omitempty"`
	TTFTMS       *float64 `json:"ttft_ms,omitempty"`
	E2EMS        float64  `json:"e2e_ms"`
	ITLMeanMS    *float64 `json:"itl_mean_ms,omitempty"`
	ITLMaxMS     *float64 `json:"itl_max_ms,omitempty"`
	TPOTMS       *float64 `json:"tpot_ms,omitempty"`
	Events       int      `json:"events"`
	PromptTokens *int     `json:"prompt_tokens,omitempty"`
	OutputTokens *int     `json:"output_tokens,omitempty"`
	Status       int      `json:"status"`
	Error        string   `json:"error,omitempty"`
	Message      string   `json:"message,omitempty"`
	BytesIn      int64    `json:"bytes_in"`
}

// AppendJSONLine appends r as one line of requests.jsonl (with its
// newline) to buf, without reflection: it runs once per request.
func AppendJSONLine(buf []byte, r *Request, stage string) []byte {
	msf := func(b []byte, key string, d time.Duration) []byte {
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, '"', ':')
		return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
	}
	buf = append(buf, `{"stage":`...)
	buf = appendString(buf, stage)
	buf = append(buf, `,"seq":`...)
	buf = strconv.AppendUint(buf, r.Seq, 10)
	if r.Scheduled >= 0 {
		buf = msf(buf, "sched_ms", r.Scheduled)
	}
	buf = msf(buf, "sent_ms", r.Sent)
	if r.Headers > 0 {
		buf = msf(buf, "headers_ms", r.Headers)
	}
	if r.TTFT > 0 {
		buf = msf(buf, "ttft_ms", r.TTFT)
	}
	buf = msf(buf, "e2e_ms", r.E2E)
	if len(r.ITL) > 0 {
		var sum, top time.Duration
		for _, g := range r.ITL {
			sum += g
			top = max(top, g)
		}
		buf = msf(buf, "itl_mean_ms", sum/time.Duration(len(r.ITL)))
		buf = msf(buf, "itl_max_ms", top)
	}
	if tp := r.TPOT(); tp > 0 {
		buf = msf(buf, "tpot_ms", tp)
	}
	buf = append(buf, `,"events":`...)
	buf = strconv.AppendInt(buf, int64(r.Events), 10)
	if r.PromptTokens >= 0 {
		buf = append(buf, `,"prompt_tokens":`...)
		buf = strconv.AppendInt(buf, int64(r.PromptTokens), 10)
	}
	if r.OutputTokens >= 0 {
		buf = append(buf, `,"output_tokens":`...)
		buf = strconv.AppendInt(buf, int64(r.OutputTokens), 10)
	}
	buf = append(buf, `,"status":`...)
	buf = strconv.AppendInt(buf, int64(r.Status), 10)
	if r.Class != OK {
		buf = append(buf, `,"error":`...)
		buf = appendString(buf, string(r.Class))
		if r.Message != "" {
			buf = append(buf, `,"message":`...)
			buf = appendString(buf, r.Message)
		}
	}
	buf = append(buf, `,"bytes_in":`...)
	buf = strconv.AppendInt(buf, r.BytesIn, 10)
	return append(buf, '}', '\n')
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // rare: messages with quotes or non-ASCII
	return append(b, q...)
}
