package timeline

import (
	"io"
	"testing"
)

// A run that ends less than half a millisecond into a row has a last row
// of span 0 at report.json's precision: the page is still written (its
// per-second rates would be NaN, which JSON cannot hold).
func TestHTMLWithAZeroSpanRow(t *testing.T) {
	r := scripted(t)
	r.Timeline[len(r.Timeline)-1].Span = 0
	if err := WriteHTML(io.Discard, r, Assets{}); err != nil {
		t.Fatal(err)
	}
}
