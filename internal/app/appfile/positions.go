package appfile

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// sep joins the parts of a key path; TOML keys may hold any character but
// a NUL is vanishingly unlikely in a configuration file.
const sep = "\x00"

func pathKey(parts []string) string { return strings.Join(parts, sep) }

// keyLines maps every key and table of a document to the line it is
// defined on. Paths go through array tables by index ("service", "1",
// "options", "port"). The document must already be known to be valid TOML:
// the walk records positions and leaves the semantics to the decoder.
func keyLines(data []byte) map[string]int {
	w := &lineWalker{lines: map[string]int{}, arrays: map[string]int{}}
	w.p.Reset(data)
	for w.p.NextExpression() {
		e := w.p.Expression()
		switch e.Kind {
		case unstable.Table:
			keys, line := w.keys(e.Key())
			w.cur = w.resolve(keys)
			w.record(w.cur, line)
		case unstable.ArrayTable:
			keys, line := w.keys(e.Key())
			base := append(w.resolve(keys[:len(keys)-1]), keys[len(keys)-1])
			k := pathKey(base)
			idx := w.arrays[k]
			w.arrays[k] = idx + 1
			w.record(base, line)
			w.cur = append(base, strconv.Itoa(idx))
			w.lines[pathKey(w.cur)] = line
		case unstable.KeyValue:
			w.keyValue(w.cur, e)
		}
	}
	return w.lines
}

type lineWalker struct {
	p      unstable.Parser
	lines  map[string]int
	arrays map[string]int // array-table path → elements so far
	cur    []string       // path of the table being filled
}

func (w *lineWalker) keys(it unstable.Iterator) ([]string, int) {
	var keys []string
	line := 0
	for it.Next() {
		n := it.Node()
		if line == 0 {
			line = w.p.Shape(n.Raw).Start.Line
		}
		keys = append(keys, string(n.Data))
	}
	return keys, line
}

// resolve turns a dotted key into a path, stepping into the last element of
// every array of tables on the way ([service.options] after [[service]]).
func (w *lineWalker) resolve(keys []string) []string {
	var path []string
	for _, k := range keys {
		path = append(path, k)
		if n, ok := w.arrays[pathKey(path)]; ok {
			path = append(path, strconv.Itoa(n-1))
		}
	}
	return path
}

// record keeps the first line a path was seen on, and the same for every
// prefix that has none yet (tables created implicitly by dotted keys).
func (w *lineWalker) record(path []string, line int) {
	for i := 1; i <= len(path); i++ {
		k := pathKey(path[:i])
		if _, ok := w.lines[k]; !ok {
			w.lines[k] = line
		}
	}
}

func (w *lineWalker) keyValue(table []string, kv *unstable.Node) {
	keys, line := w.keys(kv.Key())
	path := append(append([]string(nil), table...), keys...)
	w.record(path, line)
	w.value(path, kv.Value())
}

func (w *lineWalker) value(path []string, v *unstable.Node) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			w.keyValue(path, it.Node())
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			el := append(append([]string(nil), path...), strconv.Itoa(i))
			n := it.Node()
			if n.Raw.Length > 0 {
				w.record(el, w.p.Shape(n.Raw).Start.Line)
			}
			w.value(el, n)
		}
	}
}
