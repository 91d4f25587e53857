package measure

import (
	"reflect"
	"testing"
	"time"
)

// A distribution survives its sparse copy and its HDR V2 encoding with
// every percentile, its count and its maximum.
func TestDistCopies(t *testing.T) {
	for _, digits := range []int{2, 3} {
		d := NewDist(digits)
		for i := range 500 {
			d.Add(time.Duration(i*i) * time.Microsecond)
		}
		d.AddN(90*time.Second, 3)
		enc, err := d.Encode()
		if err != nil {
			t.Fatal(err)
		}
		dec, err := DecodeDist(enc)
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]*Dist{"sparse": d.Sparse().Dist(), "encoded": dec} {
			if !reflect.DeepEqual(c.Summary(), d.Summary()) {
				t.Errorf("%d digits, %s: %+v, want %+v", digits, name, c.Summary(), d.Summary())
			}
		}
	}
	if NewDist(2).Sparse().Dist().Count() != 0 || !NewDist(2).Sparse().Empty() {
		t.Error("an empty distribution's copy is not empty")
	}
	if _, err := DecodeDist("HISTFAAAnot base64!"); err == nil {
		t.Error("garbage decoded")
	}
}
