package scenario

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/scaleout/scaleout/internal/yamlread"
)

var durationType = reflect.TypeFor[time.Duration]()

// decodeStruct decodes a mapping into the struct into points at, by the
// fields' yaml tags, over the values it already holds (its defaults). It
// knows strings, bools, integers, floats, durations and nested structs:
// what a block of settings such as sim: is made of. Unknown keys and bad
// values are reported like every other scenario error.
func (r *reader) decodeStruct(n *yaml.Node, path string, into any) {
	v := reflect.ValueOf(into)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("scenario: decodeStruct needs a pointer to a struct")
	}
	r.decodeValue(n, path, v.Elem())
}

func (r *reader) decodeValue(n *yaml.Node, path string, v reflect.Value) {
	if v.Kind() == reflect.Struct && v.Type() != durationType {
		m := r.Mapping(n, path)
		r.decodeFields(m, path, v)
		m.Finish()
		return
	}
	switch {
	case v.Type() == durationType:
		v.SetInt(int64(r.duration(n, path)))
	case v.Kind() == reflect.String:
		v.SetString(r.str(n, path))
	case v.Kind() == reflect.Bool:
		v.SetBool(r.Bool(n, path))
	case v.CanInt():
		i := r.Int(n, path, 0)
		if v.OverflowInt(int64(i)) {
			r.Failf(n, path, "%d is too large", i)
			return
		}
		v.SetInt(int64(i))
	case v.CanUint():
		i := r.Int(n, path, 0)
		v.SetUint(uint64(i))
	case v.CanFloat():
		v.SetFloat(r.Float(n, path))
	default:
		panic(fmt.Sprintf("scenario: cannot decode into %s at %s", v.Type(), path))
	}
}

// decodeFields reads each tagged field of the struct v from m; embedded
// structs without a tag contribute their fields to the same mapping.
func (r *reader) decodeFields(m *yamlread.Mapping, path string, v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if tag == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
			r.decodeFields(m, path, v.Field(i))
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if node := m.Get(tag); node != nil {
			r.decodeValue(node, yamlread.Join(path, tag), v.Field(i))
		}
	}
}
