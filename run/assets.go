package run

import (
	"io"
	"sync"

	"github.com/tsenart/vegeta/v12/lib/plot"

	"github.com/scaleout/scaleout/timeline"
)

// HTMLAssets is the charting library report.html inlines: uPlot, embedded in
// vegeta's plot package (no new dependency, no CDN, the page works offline).
var HTMLAssets = sync.OnceValue(func() timeline.Assets {
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
