package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/scenario"
)

// The scenarios the repository ships load, with their ScaledObjects,
// series and expectations, on the defaults their ${VAR:-default}s give.
func TestShippedScenariosLoad(t *testing.T) {
	for _, v := range []string{"GATEWAY", "PROMETHEUS", "TARGET", "MODEL", "GATEWAY_TOKEN", "PROM_TOKEN"} {
		t.Setenv(v, "")
	}
	paths, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil || len(paths) < 4 {
		t.Fatalf("scenarios: %v %v", paths, err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			plan, err := run.Prepare(context.Background(), p, scenario.Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			defer plan.Close()
			if len(plan.Scenario.Load) == 0 {
				t.Error("no load stages")
			}
		})
	}
}
