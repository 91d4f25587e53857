package spell

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"target", "request", "load", "observe", "rate"}
	for got, want := range map[string]string{"targte": "target", "rat": "rate", "lod": "load", "obsrve": "observe", "zzzzzz": "", "": ""} {
		if c := Closest(got, known); c != want {
			t.Errorf("Closest(%q) = %q, want %q", got, c, want)
		}
	}
	if d := distance("kitten", "sitting"); d != 3 {
		t.Errorf("distance = %d, want 3", d)
	}
}
