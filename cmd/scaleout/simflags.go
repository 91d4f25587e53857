package main

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/sim"
)

// simFlagHelp is the help of each flag of scaleout sim, by the yaml path of
// the sim.Config knob it sets. The flag's name is that path with "." and "_"
// turned into "-" (replicas.max → --replicas-max); its default is the
// knob's value in sim.DefaultConfig.
var simFlagHelp = map[string]string{
	"model":              "served model name",
	"max_model_len":      "context length: prompt + max_tokens above it is a 400",
	"max_num_seqs":       "running slots per replica (continuous batching)",
	"max_waiting":        "waiting-queue bound per replica, 0 = unbounded; a full queue answers 429",
	"ttft":               "base prefill time (time to first token without queueing)",
	"prefill_per_token":  "extra prefill time per prompt token",
	"itl":                "inter-token latency with a batch of one",
	"batch_slowdown":     "ITL grows by this fraction per extra running request",
	"kv_capacity_tokens": "tokens of KV cache per replica",
	"replicas.min":       "ScaledObject minReplicaCount",
	"replicas.max":       "ScaledObject maxReplicaCount",
	"replicas.start":     "ready replicas when the fleet starts",
	"cold_start":         "pod start plus model load",
	"gpu_quota":          "pods that can hold a GPU, 0 = unlimited; the rest stay Pending",
	"threshold":          "KEDA threshold on the fleet's total waiting requests (per replica under AverageValue, KEDA's default)",
	"hpa_sync":           "HPA controller sync period",
	"scale_down_window":  "HPA downscale stabilization window (spec.behavior unset)",
	"namespace":          "namespace label of the series",
	"deployment":         "Deployment name (pod name prefix)",
	"scaled_object":      "ScaledObject name (the HPA is keda-hpa-<name>)",
	"paused":             "start with the ScaledObject paused",
	"seed":               "seed of pod names, output lengths and ids",
}

func simFlagName(path string) string { return strings.NewReplacer(".", "-", "_", "-").Replace(path) }

// simKnobs calls fn with the yaml path and the field of every knob of the
// struct v: a field with a yaml tag other than "-", nested structs walked.
func simKnobs(v reflect.Value, prefix string, fn func(path string, field reflect.Value)) {
	for i := range v.NumField() {
		f := v.Type().Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			simKnobs(v.Field(i), prefix+tag+".", fn)
			continue
		}
		fn(prefix+tag, v.Field(i))
	}
}

// bindSimFlags makes every knob of cfg a flag of fs, with cfg's values as
// the defaults.
func bindSimFlags(fs *pflag.FlagSet, cfg *sim.Config) {
	simKnobs(reflect.ValueOf(cfg).Elem(), "", func(path string, field reflect.Value) {
		name, help := simFlagName(path), simFlagHelp[path]
		if help == "" {
			panic("scaleout sim: no help for the knob " + path)
		}
		switch p := field.Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, help)
		case *bool:
			fs.BoolVar(p, name, *p, help)
		case *int:
			fs.IntVar(p, name, *p, help)
		case *int32:
			fs.Int32Var(p, name, *p, help)
		case *uint64:
			fs.Uint64Var(p, name, *p, help)
		case *float64:
			fs.Float64Var(p, name, *p, help)
		case *time.Duration:
			fs.DurationVar(p, name, *p, help)
		default:
			panic(fmt.Sprintf("scaleout sim: no flag for the knob %s of type %s", path, field.Type()))
		}
	})
}

// copySimFlags copies to dst the knobs of src whose flags fs was given.
func copySimFlags(dst, src *sim.Config, fs *pflag.FlagSet) {
	from := map[string]reflect.Value{}
	simKnobs(reflect.ValueOf(src).Elem(), "", func(path string, field reflect.Value) { from[path] = field })
	simKnobs(reflect.ValueOf(dst).Elem(), "", func(path string, field reflect.Value) {
		if fs.Changed(simFlagName(path)) {
			field.Set(from[path])
		}
	})
}
