package measure

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestJSONLineRoundTrip(t *testing.T) {
	r := &Request{Stage: 1, Seq: 42, Scheduled: 1500 * time.Millisecond, Sent: 1502500 * time.Microsecond,
		Headers: 90 * time.Millisecond, TTFT: 100 * time.Millisecond, E2E: 740 * time.Millisecond, Events: 3,
		ITL: []time.Duration{10 * time.Millisecond, 30 * time.Millisecond}, PromptTokens: 12, OutputTokens: 3,
		Status: 200, BytesIn: 900}
	var got RequestLine
	if err := json.Unmarshal(AppendJSONLine(nil, r, "ramp"), &got); err != nil {
		t.Fatal(err)
	}
	if got.Stage != "ramp" || got.Seq != 42 || *got.SchedMS != 1500 || got.SentMS != 1502.5 || *got.HeadersMS != 90 ||
		*got.TTFTMS != 100 || got.E2EMS != 740 || *got.ITLMeanMS != 20 || *got.ITLMaxMS != 30 || *got.TPOTMS != 320 ||
		got.Events != 3 || *got.PromptTokens != 12 || *got.OutputTokens != 3 || got.Status != 200 || got.Error != "" || got.BytesIn != 900 {
		t.Errorf("round trip: %+v", got)
	}

	failed := &Request{Scheduled: -1, Sent: time.Second, E2E: time.Millisecond, PromptTokens: -1, OutputTokens: -1,
		Status: 429, Class: HTTPClass(429), Message: "queue \"full\" — try later"}
	got = RequestLine{}
	if err := json.Unmarshal(AppendJSONLine(nil, failed, "x"), &got); err != nil {
		t.Fatal(err)
	}
	if got.SchedMS != nil || got.TTFTMS != nil || got.PromptTokens != nil || got.Error != "http_429" || got.Message != failed.Message {
		t.Errorf("failed round trip: %+v", got)
	}
}

func TestRequestDerived(t *testing.T) {
	r := Request{Scheduled: time.Second, Sent: 1200 * time.Millisecond, TTFT: 100 * time.Millisecond, E2E: 1100 * time.Millisecond, OutputTokens: 11, Events: 5}
	if r.Lag() != 200*time.Millisecond || r.TPOT() != 100*time.Millisecond || r.Done() != 2300*time.Millisecond || r.TokensPerEvent() != 2.2 {
		t.Errorf("lag %s tpot %s done %s tpe %v", r.Lag(), r.TPOT(), r.Done(), r.TokensPerEvent())
	}
	closed := Request{Scheduled: -1, Sent: time.Second, OutputTokens: 1}
	if closed.Lag() != 0 || closed.TPOT() != 0 || closed.TokensPerEvent() != 1 {
		t.Errorf("closed loop: lag %s tpot %s", closed.Lag(), closed.TPOT())
	}
}

func TestDist(t *testing.T) {
	d := NewDist(3)
	for i := 1; i <= 1000; i++ {
		d.Add(time.Duration(i) * time.Millisecond)
	}
	s := d.Summary()
	if *s.P50 < 499 || *s.P50 > 501 || *s.P99 < 989 || *s.P99 > 991 || *s.Max < 999.5 || *s.Max > 1000.5 || s.N != 1000 {
		t.Errorf("summary %v %v %v %v", *s.P50, *s.P99, *s.Max, s.N)
	}
	if e := NewDist(3).Summary(); e.P50 != nil || e.N != 0 {
		t.Errorf("empty summary = %+v", e)
	}
	d.AddN(2*time.Hour, 1) // clamped, not dropped
	if d.Count() != 1001 || d.Max() < 59*time.Minute {
		t.Errorf("clamp: count %d max %s", d.Count(), d.Max())
	}
}

func TestLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []Lengths{Fixed(7), {Kind: "uniform", Min: 3, Max: 9}, {Kind: "normal", Mean: 50, StdDev: 20, Min: 40, Max: 60}}
	for _, l := range cases {
		lo, hi := 1<<30, 0
		for range 2000 {
			n := l.Sample(r)
			lo, hi = min(lo, n), max(hi, n)
		}
		switch l.Kind {
		case "fixed":
			if lo != 7 || hi != 7 {
				t.Errorf("%s: %d..%d", l, lo, hi)
			}
		default:
			if lo != l.Min || hi != l.Max || l.Upper() != l.Max {
				t.Errorf("%s: drew %d..%d", l, lo, hi)
			}
		}
	}
}

func TestLengthsValidate(t *testing.T) {
	tests := []struct {
		l      Lengths
		err    string // "" when valid
		varies bool
	}{
		{Fixed(1), "", false},
		{Lengths{Value: 3}, "", false},
		{Fixed(0), "0: want at least 1", false},
		{Lengths{Kind: "uniform", Min: 1, Max: 1}, "", true},
		{Lengths{Kind: "uniform", Min: 5, Max: 2}, "uniform 5..2: want 1 ≤ min ≤ max", true},
		{Lengths{Kind: "normal", Mean: 5, StdDev: 1, Min: 0, Max: 9}, "normal 5±1 in 0..9: want 1 ≤ min ≤ max", true},
		{Lengths{Kind: "zipf", Value: 4}, `unknown kind "zipf"`, true},
	}
	for _, tt := range tests {
		err := tt.l.Validate()
		if got := fmt.Sprint(err); tt.err == "" && err != nil || tt.err != "" && got != tt.err {
			t.Errorf("%+v: Validate() = %v, want %q", tt.l, err, tt.err)
		}
		if got := tt.l.Varies(); got != tt.varies {
			t.Errorf("%+v: Varies() = %t, want %t", tt.l, got, tt.varies)
		}
	}
}

func BenchmarkJSONLine(b *testing.B) {
	r := &Request{Scheduled: time.Second, Sent: time.Second, TTFT: time.Millisecond, E2E: time.Second, Events: 64,
		ITL: make([]time.Duration, 63), PromptTokens: 128, OutputTokens: 64, Status: 200, BytesIn: 20000}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSONLine(buf[:0], r, "ramp")
	}
}

// A merged distribution is the one that would have recorded both sets.
func TestDistMerge(t *testing.T) {
	a, b, both := NewDist(3), NewDist(3), NewDist(3)
	for i := range 1000 {
		v := time.Duration(i*i) * time.Microsecond
		if i%3 == 0 {
			a.Add(v)
		} else {
			b.Add(v)
		}
		both.Add(v)
	}
	a.Merge(b)
	if a.Count() != 1000 || !reflect.DeepEqual(a.Summary(), both.Summary()) {
		t.Errorf("merged %d values, p99 %v; want %v", a.Count(), a.Quantile(0.99), both.Quantile(0.99))
	}
}
