package main

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/sim"
)

// TestSimFlags: every knob of sim.Config is a flag of scaleout sim under
// its yaml name, with sim.DefaultConfig's value as the default, and setting
// each flag changes its knob. The names are the command line's interface:
// a renamed yaml field shows up here.
func TestSimFlags(t *testing.T) {
	cfg := sim.DefaultConfig()
	fs := pflag.NewFlagSet("sim", pflag.ContinueOnError)
	bindSimFlags(fs, &cfg)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	want := []string{"batch-slowdown", "cold-start", "deployment", "gpu-quota", "hpa-sync", "itl", "kv-capacity-tokens",
		"max-model-len", "max-num-seqs", "max-waiting", "model", "namespace", "paused", "prefill-per-token", "replicas-max",
		"replicas-min", "replicas-start", "scale-down-window", "scaled-object", "seed", "threshold", "ttft"}
	if !slices.Equal(names, want) {
		t.Errorf("flags %q\nwant  %q", names, want)
	}
	if len(simFlagHelp) != len(want) {
		t.Errorf("%d help texts for %d flags: one names no knob", len(simFlagHelp), len(want))
	}

	def := sim.DefaultConfig()
	var args []string
	simKnobs(reflect.ValueOf(&def).Elem(), "", func(path string, v reflect.Value) {
		fl := fs.Lookup(simFlagName(path))
		if fl == nil {
			t.Fatalf("no flag for %s", path)
		}
		if d := fmt.Sprint(v.Interface()); fl.DefValue != d && fl.DefValue != fmt.Sprintf("%g", v.Interface()) {
			t.Errorf("--%s default %q, sim.DefaultConfig %q", fl.Name, fl.DefValue, d)
		}
		var set string // a value other than the default
		switch x := v.Interface().(type) {
		case string:
			set = x + "x"
		case bool:
			set = fmt.Sprint(!x)
		case time.Duration:
			set = (x + time.Second).String()
		case float64:
			set = fmt.Sprint(x + 0.25)
		case uint64:
			set = fmt.Sprint(x + 3)
		default:
			set = fmt.Sprint(v.Int() + 3)
		}
		args = append(args, "--"+fl.Name+"="+set)
	})
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	after := map[string]any{}
	simKnobs(reflect.ValueOf(&cfg).Elem(), "", func(path string, v reflect.Value) { after[path] = v.Interface() })
	simKnobs(reflect.ValueOf(&def).Elem(), "", func(path string, v reflect.Value) {
		if after[path] == v.Interface() {
			t.Errorf("--%s left %s at %v", simFlagName(path), path, v.Interface())
		}
	})
	if cfg.Behavior != nil || cfg.MetricType != "" || cfg.KVTrigger != nil {
		t.Errorf("the ScaledObject's fields were set: %+v %q %+v", cfg.Behavior, cfg.MetricType, cfg.KVTrigger)
	}
}

// TestCopySimFlags: with --scaledobject, the flags given win over the
// manifest and the others leave its values alone.
func TestCopySimFlags(t *testing.T) {
	flagged := sim.DefaultConfig()
	fs := pflag.NewFlagSet("sim", pflag.ContinueOnError)
	bindSimFlags(fs, &flagged)
	if err := fs.Parse([]string{"--replicas-max=9", "--hpa-sync=1s", "--namespace=flag"}); err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Namespace, cfg.Deployment, cfg.Replicas.Max, cfg.Threshold = "manifest", "manifest", 3, 2
	copySimFlags(&cfg, &flagged, fs)
	if cfg.Replicas.Max != 9 || cfg.HPASync != time.Second || cfg.Namespace != "flag" || cfg.Deployment != "manifest" || cfg.Threshold != 2 {
		t.Errorf("got %+v", cfg)
	}
}
