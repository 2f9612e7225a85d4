package appfile

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// nested is an application file whose one table header has n parts.
func nested(n int) []byte {
	return []byte("[" + strings.Repeat("a.", n-1) + "a]\nx = 1\n")
}

// A deep table costs time linear in its depth: 50,000 parts took 15.5 s
// and 2.6 GB when every prefix of the path was a string key.
func TestDeepNestingIsCheap(t *testing.T) {
	src := nested(50_000)
	start := time.Now()
	var doc map[string]any
	if err := toml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	alone := time.Since(start)
	start = time.Now()
	_, err := Parse("deep.toml", src)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), `deep.toml:1: unknown key "a"`) {
		t.Fatalf("error %v, want the unknown key on line 1", err)
	}
	// Against the TOML library on the same file, so a loaded machine or the
	// race detector does not fail it: linear work is a few times the
	// library's, quadratic was 1,900 times.
	if took > 10*alone+100*time.Millisecond || took > 5*time.Second {
		t.Fatalf("parsing 50,000 nested parts took %v (the TOML library alone: %v)", took, alone)
	}
	t.Logf("50,000 nested parts: %v (the TOML library alone: %v)", took, alone)
}

func BenchmarkNested(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 50_000} {
		src := nested(n)
		b.Run("parts="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Parse("deep.toml", src)
			}
		})
		// The baseline: what the TOML library alone costs on the same file.
		b.Run("toml-only/parts="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var doc map[string]any
				toml.Unmarshal(src, &doc)
			}
		})
	}
}
