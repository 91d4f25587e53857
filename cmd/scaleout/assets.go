package main

import (
	"io"
	"sync"

	"github.com/tsenart/vegeta/v12/lib/plot"

	"github.com/scaleout/scaleout/timeline"
)

// uplot is the charting library report.html inlines: uPlot, embedded in
// vegeta's plot package (no new dependency, no CDN, the page works offline).
var uplot = sync.OnceValue(func() timeline.Assets {
	read := func(name string) []byte {
		f, err := plot.Assets.Open(name)
		if err != nil {
			return nil
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		return b
	}
	return timeline.Assets{UPlotJS: read("uPlot.min.js"), UPlotCSS: read("uPlot.min.css")}
})
