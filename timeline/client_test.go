package timeline

import (
	"strings"
	"testing"

	"github.com/scaleout/scaleout/measure"
)

func TestCheckClient(t *testing.T) {
	lag := func(v float64) *float64 { return &v }
	r := &Report{Verdict: "pass", Stages: []StageReport{
		{Name: "ok", LoadReport: LoadReport{TargetRPS: 100, AchievedRPS: 99, SendLag: summary(lag(2))}, Client: &ClientUse{CPUCores: 0.3, Cores: 2}},
		{Name: "capped", LoadReport: LoadReport{TargetRPS: 100, AchievedRPS: 40, SendLag: summary(lag(900))}, Client: &ClientUse{CPUCores: 0.2, Cores: 2, CapReached: 600}},
		{Name: "cpu", LoadReport: LoadReport{TargetRPS: 20000, AchievedRPS: 19900, SendLag: summary(lag(75))}, Client: &ClientUse{CPUCores: 1.95, Cores: 2}},
		{Name: "fds", LoadReport: LoadReport{TargetRPS: 100, AchievedRPS: 90, Errors: map[string]int64{"client_limit": 12}, SendLag: summary(lag(1))}, Client: &ClientUse{Cores: 2}},
		{Name: "closed", LoadReport: LoadReport{TargetRPS: 0, AchievedRPS: 50}},
		{Name: "shared", LoadReport: LoadReport{TargetRPS: 100, AchievedRPS: 80, SendLag: summary(lag(3))}, Client: &ClientUse{CPUCores: 0.1, Cores: 2}},
	}}
	CheckClient(r)
	if r.ClientLimited == nil || len(r.Expectations) != 1 || r.Expectations[0].OK {
		t.Fatalf("not marked: %+v outcomes %+v", r.ClientLimited, r.Expectations)
	}
	got := map[string]string{}
	for _, s := range r.ClientLimited.Stages {
		got[s.Stage] = strings.Join(s.Reasons, " | ")
	}
	want := map[string]string{
		"capped": "max_in_flight: 600 sends were held back",
		"cpu":    "CPU: the client used 1.95 of its 2 cores",
		"fds":    "connection limits: 12 requests found no file descriptor or local port",
		"shared": "not CPU, max_in_flight or sockets",
	}
	if len(got) != len(want) {
		t.Errorf("limited stages %v, want %v", got, want)
	}
	for stage, w := range want {
		if !strings.Contains(got[stage], w) {
			t.Errorf("%s: reasons %q, want %q", stage, got[stage], w)
		}
	}
	last := r.Expectations[len(r.Expectations)-1]
	if last.OK || !strings.HasPrefix(last.Detail, "client_limited: capped achieved 40/s of 100/s, send lag p99 0.90s") {
		t.Errorf("outcome %+v", last)
	}

	fine := &Report{Verdict: "none", Stages: []StageReport{{Name: "a", LoadReport: LoadReport{TargetRPS: 10, AchievedRPS: 10}}}}
	CheckClient(fine)
	if fine.ClientLimited != nil || fine.Verdict != "none" || len(fine.Expectations) != 0 {
		t.Errorf("a delivered load was marked: %+v", fine)
	}
}

func summary(p99 *float64) measure.Summary { return measure.Summary{P99: p99, N: 1} }

// The client's memory is printed only where the platform reported it.
func TestStageCostLeavesOutUnknownMemory(t *testing.T) {
	r := &Report{Stages: []StageReport{
		{Name: "a", Client: &ClientUse{CPUCores: 0.5, Cores: 2, RSSMB: 41}},
		{Name: "b", Client: &ClientUse{CPUCores: 0.25, Cores: 2}},
	}}
	var b strings.Builder
	if err := WriteText(&b, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := "client:  a 0.50 of 2 cores, 41 MB · b 0.25 of 2 cores\n"; !strings.Contains(b.String(), want) {
		t.Errorf("want %q in:\n%s", want, b.String())
	}
}
