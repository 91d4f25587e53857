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
	if last.OK || !strings.HasPrefix(last.Detail, "client_limited: capped: sent 40/s of the 100/s planned (more than 5% short); sends went out late: send lag p99 0.90s, over the 50ms limit") {
		t.Errorf("outcome %+v", last)
	}
	if r.ClientCheck == nil || r.ClientCheck.MaxSendLagMS != 50 || r.ClientCheck.MaxShortfall != 0.05 {
		t.Errorf("the limits judged by are not recorded: %+v", r.ClientCheck)
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

// A stage that kept its rate but sent late says so, not "achieved 45/s of
// 45/s" as if that were the failure; a machine busy with other processes
// is named from the client's CPU wait; and the scenario's client_check
// moves the limits.
func TestClientCheckWording(t *testing.T) {
	lag := func(v float64) *float64 { return &v }
	wait := 1.2
	r := &Report{Stages: []StageReport{
		{Name: "ramp", LoadReport: LoadReport{TargetRPS: 45, AchievedRPS: 45, SendLag: summary(lag(55))}, Client: &ClientUse{CPUCores: 0.2, Cores: 2, CPUSeconds: 3, CPUWaitS: &wait}},
	}}
	CheckClient(r)
	if r.ClientLimited == nil {
		t.Fatal("a 55ms send lag passed the 50ms default")
	}
	d := r.Expectations[0].Detail
	for _, want := range []string{"sends went out late: send lag p99 55ms, over the 50ms limit (the rate itself was kept: 45/s of 45/s)", "a busy machine", "waited 1.2s for a CPU", "client_check.max_send_lag"} {
		if !strings.Contains(d, want) {
			t.Errorf("detail lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "achieved 45/s of 45/s") || strings.Contains(d, "more than 5% short") {
		t.Errorf("the kept rate reads as a shortfall:\n%s", d)
	}
	if !r.ClientLimited.Stages[0].Busy || !r.ClientLimited.Stages[0].Late || r.ClientLimited.Stages[0].Short {
		t.Errorf("flags %+v", r.ClientLimited.Stages[0])
	}

	// An idle machine (little wait) is not called busy.
	idle := 0.01
	r = &Report{Stages: []StageReport{
		{Name: "s", LoadReport: LoadReport{TargetRPS: 45, AchievedRPS: 45, SendLag: summary(lag(55))}, Client: &ClientUse{CPUSeconds: 3, CPUWaitS: &idle, Cores: 2}},
	}}
	CheckClient(r)
	if r.ClientLimited == nil || r.ClientLimited.Stages[0].Busy || strings.Contains(r.Expectations[0].Detail, "busy machine") {
		t.Errorf("an idle machine called busy: %+v", r.ClientLimited)
	}

	// client_check: {max_send_lag: 250ms} lets the same stage pass.
	r = &Report{ClientCheck: &ClientCheck{MaxSendLagMS: 250, MaxShortfall: 0.05}, Stages: []StageReport{
		{Name: "s", LoadReport: LoadReport{TargetRPS: 45, AchievedRPS: 45, SendLag: summary(lag(55))}},
	}}
	CheckClient(r)
	if r.ClientLimited != nil {
		t.Errorf("max_send_lag 250ms: still limited: %+v", r.ClientLimited)
	}
}
