package yamlread

import (
	"errors"
	"testing"

	yaml "go.yaml.in/yaml/v4"
)

func TestErrorText(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{File: "s.yaml", Line: 3, Col: 7, Field: "load[0].rate", Msg: "bad"}, "s.yaml:3:7: load[0].rate: bad"},
		{Error{File: "s.yaml", Line: 3, Msg: "bad"}, "s.yaml:3: bad"},
		{Error{File: "s.yaml", Field: "load", Msg: "missing"}, "s.yaml: load: missing"},
		{Error{File: "flag", Field: "--scrape", Msg: "no"}, "flag: --scrape: no"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%#v: %q, want %q", c.e, got, c.want)
		}
	}
	es := Errors{{File: "a", Line: 1, Col: 1, Msg: "x"}, {File: "a", Msg: "y"}}
	if got := es.Error(); got != "a:1:1: x\na: y" {
		t.Errorf("Errors: %q", got)
	}
}

func TestDocuments(t *testing.T) {
	docs, err := Documents("m.yaml", []byte("# only a comment\n---\na: 1\n---\n---\nb: &x 2\nc: *x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || Get(docs[0], "a").Value != "1" || Get(docs[1], "c").Value != "2" || docs[1].Line != 6 {
		t.Fatalf("documents %d: %+v", len(docs), docs)
	}
	if docs, err := Documents("m.yaml", []byte("# nothing\n")); err != nil || len(docs) != 0 {
		t.Errorf("comments only: %d documents, %v", len(docs), err)
	}
	_, err = Documents("m.yaml", []byte("a: 1\n---\nb: [\n"))
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Error() != "m.yaml:4:1: not valid YAML: did not find expected node content" {
		t.Errorf("syntax error in the second document: %v", err)
	}
}

func read(t *testing.T, doc string) (*Reader, *yaml.Node) {
	t.Helper()
	docs, err := Documents("f.yaml", []byte(doc))
	if err != nil || len(docs) != 1 {
		t.Fatalf("%q: %v", doc, err)
	}
	return &Reader{File: "f.yaml"}, docs[0]
}

func TestMapping(t *testing.T) {
	r, root := read(t, "name: x\nrate: 3\nrat: 4\nname: y\nzzz: 1\nnothing:\n")
	m := r.Mapping(root, "stage")
	if v := m.Get("name"); v == nil || v.Value != "x" {
		t.Errorf("name %v", v)
	}
	if m.Get("rate") == nil || m.Get("nothing") != nil || !m.Given("nothing") || m.Given("absent") || m.Key("rate").Line != 2 {
		t.Error("Get, Given or Key")
	}
	m.Finish()
	err := r.Err()
	want := "f.yaml:3:1: stage.rat: unknown field (did you mean rate?)\n" +
		"f.yaml:4:1: stage.name: given twice (the first is on line 1)\n" +
		"f.yaml:5:1: stage.zzz: unknown field (known here: name, rate, nothing)"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}

	r, root = read(t, "[1, 2]\n")
	r.Mapping(root, "top")
	if err := r.Err(); err == nil || err.Error() != "f.yaml:1:1: top: want a mapping (key: value lines), got a list" {
		t.Errorf("a list as a mapping: %v", err)
	}
}

func TestScalars(t *testing.T) {
	r, root := read(t, "b: off\ni: 1_000\nf: ' 2.5'\nbad_b: maybe\nbad_i: 1.5\nlow: 0\nbad_f: .inf\nlist: [1]\n")
	if !(r.Bool(Get(root, "b"), "b") == false && r.Int(Get(root, "i"), "i", 1) == 1000 && r.Float(Get(root, "f"), "f") == 2.5) || r.Len() != 0 {
		t.Fatalf("good values: %v", r.Err())
	}
	r.Bool(Get(root, "bad_b"), "bad_b")
	r.Int(Get(root, "bad_i"), "bad_i", 0)
	r.Int(Get(root, "low"), "low", 1)
	r.Float(Get(root, "bad_f"), "bad_f")
	r.Float(Get(root, "list"), "list")
	want := "f.yaml:4:8: bad_b: \"maybe\" is not true or false\n" +
		"f.yaml:5:8: bad_i: \"1.5\" is not a whole number\n" +
		"f.yaml:6:6: low: 0 is below the smallest allowed, 1\n" +
		"f.yaml:7:8: bad_f: \".inf\" is not a number\n" +
		"f.yaml:8:7: list: want a single value, got a list"
	if err := r.Err(); err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if !r.Reported(Get(root, "low")) || r.Reported(Get(root, "b")) {
		t.Error("Reported")
	}
}

func TestGetIsLenient(t *testing.T) {
	_, root := read(t, "spec: {a: {b: 1}, list: [x]}\n")
	if v := Get(root, "spec", "a", "b"); v == nil || v.Value != "1" {
		t.Errorf("spec.a.b = %v", v)
	}
	if Get(root, "spec", "list", "x") != nil || Get(root, "nope", "a") != nil || Get(nil, "a") != nil {
		t.Error("a missing path gave a node")
	}
}
