package appfile

import (
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// positions is a tree of every key and table of a document with the line
// each is defined on. Paths go through array tables by index ("service",
// "1", "options", "port"). A node is a number and a child is found by its
// parent's number and its own key, so a table nested n deep costs n
// entries: keying by whole path strings cost every prefix, n²/2 bytes.
type positions struct {
	child map[edge]int
	line  []int // by node; 0: not seen (the root is node 0)
}

type edge struct {
	parent int
	key    string
}

func newPositions() *positions {
	return &positions{child: map[edge]int{}, line: []int{0}}
}

// step returns the child key of node n, adding it when add is set; -1
// when it is absent.
func (p *positions) step(n int, key string, add bool) int {
	if c, ok := p.child[edge{n, key}]; ok {
		return c
	}
	if !add {
		return -1
	}
	c := len(p.line)
	p.child[edge{n, key}] = c
	p.line = append(p.line, 0)
	return c
}

// Line returns where path is defined, or where its nearest ancestor is;
// 1 when none is known.
func (p *positions) Line(path ...string) int {
	line, n := 1, 0
	for _, k := range path {
		if n = p.step(n, k, false); n < 0 {
			break
		}
		if p.line[n] != 0 {
			line = p.line[n]
		}
	}
	return line
}

// keyLines walks a document that is already known to be valid TOML: it
// records positions and leaves the semantics to the decoder.
func keyLines(data []byte) *positions {
	w := &lineWalker{pos: newPositions(), arrays: map[int]int{}, parent: []int{-1}}
	w.p.Reset(data)
	for w.p.NextExpression() {
		e := w.p.Expression()
		switch e.Kind {
		case unstable.Table:
			keys, line := w.keys(e.Key())
			w.cur = w.resolve(0, keys)
			w.record(w.cur, line)
		case unstable.ArrayTable:
			keys, line := w.keys(e.Key())
			base := w.node(w.resolve(0, keys[:len(keys)-1]), keys[len(keys)-1])
			idx := w.arrays[base]
			w.arrays[base] = idx + 1
			w.record(base, line)
			w.cur = w.node(base, strconv.Itoa(idx))
			w.pos.line[w.cur] = line
		case unstable.KeyValue:
			w.keyValue(w.cur, e)
		}
	}
	return w.pos
}

type lineWalker struct {
	p      unstable.Parser
	pos    *positions
	parent []int       // by node
	arrays map[int]int // array-table node → elements so far
	cur    int         // node of the table being filled
}

// node returns the child key of n, creating it.
func (w *lineWalker) node(n int, key string) int {
	c := w.pos.step(n, key, true)
	if c == len(w.parent) {
		w.parent = append(w.parent, n)
	}
	return c
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

// resolve turns a dotted key below node n into a node, stepping into the
// last element of every array of tables on the way ([service.options]
// after [[service]]).
func (w *lineWalker) resolve(n int, keys []string) int {
	for _, k := range keys {
		n = w.node(n, k)
		if c, ok := w.arrays[n]; ok {
			n = w.node(n, strconv.Itoa(c-1))
		}
	}
	return n
}

// record keeps the first line a node was seen on, and the same for every
// ancestor that has none yet (tables created implicitly by dotted keys).
// A node with a line has ancestors with lines, so the climb stops at the
// first: each node is given its line once.
func (w *lineWalker) record(n int, line int) {
	for ; n > 0 && w.pos.line[n] == 0; n = w.parent[n] {
		w.pos.line[n] = line
	}
}

func (w *lineWalker) keyValue(table int, kv *unstable.Node) {
	keys, line := w.keys(kv.Key())
	n := table
	for _, k := range keys {
		n = w.node(n, k)
	}
	w.record(n, line)
	w.value(n, kv.Value())
}

func (w *lineWalker) value(n int, v *unstable.Node) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			w.keyValue(n, it.Node())
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			el := w.node(n, strconv.Itoa(i))
			c := it.Node()
			if c.Raw.Length > 0 {
				w.record(el, w.p.Shape(c.Raw).Start.Line)
			}
			w.value(el, c)
		}
	}
}
