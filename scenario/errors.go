package scenario

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a scenario file (or in a flag that overrides it).
// It prints as "file:line:col: field: message", the way compilers do, so
// editors can jump to it.
type Error struct {
	File  string // the scenario file, or "flag" for a command-line override
	Line  int    // 1-based; 0 when the problem has no place (a missing field)
	Col   int    // 1-based; 0 when unknown
	Field string // the field path, e.g. load[1].rate
	Msg   string // what is wrong and, where there is one, the fix
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order. A scenario
// loader reports them all at once so one edit fixes them all.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Col < es[j].Col
	})
	return es
}
