package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecoder checks that any byte stream, cut anywhere, decodes to the same
// frames (or the same error) as when fed whole, never reads past its input,
// and that every frame it returns re-encodes to the bytes it came from.
func FuzzDecoder(f *testing.F) {
	stream, _ := sample()
	f.Add(stream, uint8(1), uint16(100))
	f.Add(AppendFrame(nil, 1, CmdVerify, []byte(`{"phone_number":1}`)), uint8(3), uint16(0))
	f.Add([]byte{0, 0, 0, 11, 0, 0, 0, 1, 0, 0, 0, 5}, uint8(5), uint16(0))
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5}, uint8(2), uint16(64))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8, max uint16) {
		whole := Decoder{Max: int(max)}
		want, wantErr := collect(t, &whole, data, nil)
		pieces := Decoder{Max: int(max)}
		got, gotErr := collect(t, &pieces, data, []int{int(cut), int(cut)/2 + 1, 1})
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("whole: %v, in pieces: %v", wantErr, gotErr)
		}
		var le *LengthError
		if wantErr != nil && !errors.As(wantErr, &le) {
			t.Fatalf("unexpected error type %T", wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("whole: %d frames, in pieces: %d", len(want), len(got))
		}
		var re []byte
		for i := range want {
			if got[i].Version != want[i].Version || got[i].Command != want[i].Command || !bytes.Equal(got[i].Body, want[i].Body) {
				t.Fatalf("frame %d differs: %+v vs %+v", i, got[i], want[i])
			}
			re = AppendFrame(re, want[i].Version, want[i].Command, want[i].Body)
		}
		if !bytes.HasPrefix(data, re) {
			t.Fatal("frames do not re-encode to a prefix of the input")
		}
		if wantErr == nil && len(re)+whole.Buffered() != len(data) {
			t.Fatalf("%d bytes in frames + %d buffered != %d input", len(re), whole.Buffered(), len(data))
		}
	})
}

// ParseID's fast path for plain strings agrees with the JSON decoder on
// every input.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{`"alice"`, `"a\\"b"`, `"\u00e9t\u00e9"`, `"é"`, "\"\xff\"", `"a"b"`, `"`, `""`, `123`, `"tab\there"`, "\"\t\"", ` "x" `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := ParseID(raw)
		var key string
		trimmed := bytes.TrimSpace(raw)
		if len(trimmed) == 0 || trimmed[0] != '"' {
			return
		}
		werr := json.Unmarshal(trimmed, &key)
		if (err == nil) != (werr == nil && key != "" && len(key) <= MaxIDLen) {
			t.Fatalf("ParseID(%q) error %v; decoder %q, %v", raw, err, key, werr)
		}
		if err == nil && got.Key != key {
			t.Fatalf("ParseID(%q) = %q; decoder says %q", raw, got.Key, key)
		}
	})
}
