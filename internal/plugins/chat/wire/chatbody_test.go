package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

var chatSeeds = []string{
	`{"chat_from":"alice","chat_to":"bob","chat_content":"hello"}`,
	` { "chat_content" : "a\"b\\c\u00e9\n" , "chat_from":"a" } `,
	`{"chat_from":"a","chat_from":"b"}`,
	`{}`, `{ }`, `null`, `[]`, `"x"`, ``, `{`, `{"chat_from":"a",}`, `{"chat_from":"a"}x`,
	`{"CHAT_FROM":"a"}`, `{"chat_from":1,"chat_content":"x"}`, `{"chat_to":["a","b"],"chat_from":"c","chat_content":"d"}`,
	`{"chat_from":"a","other":"b"}`, `{"chat\u005ffrom":"a"}`, "{\"chat_from\":\"\x01\"}", `{"chat_from":"\x"}`,
	`{"chat_from":"\u12"}`, "{\"chat_from\":\"\xff\"}", `{"chat_from":null}`, `{"chat_content":"x"}   `,
}

// ParseChat's own reading agrees with json.Unmarshal on every input: the
// same fields, byte for byte, or an error where the decoder has one.
func FuzzParseChat(f *testing.F) {
	for _, s := range chatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var want Chat
		wantErr := json.Unmarshal(body, &want)
		got, err := ParseChat(body)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: ParseChat error %v, decoder %v", body, err, wantErr)
		}
		if err != nil {
			return
		}
		for _, f := range []struct {
			name      string
			got, want json.RawMessage
		}{{"chat_from", got.From, want.From}, {"chat_to", got.To, want.To}, {"chat_content", got.Content, want.Content}} {
			if !bytes.Equal(f.got, f.want) || (f.got == nil) != (f.want == nil) {
				t.Fatalf("%q: %s is %q, the decoder's %q", body, f.name, f.got, f.want)
			}
		}
	})
}

// The fields are the caller's: changing body afterwards changes none.
func TestParseChatOwnsItsFields(t *testing.T) {
	body := []byte(`{"chat_from":"alice","chat_to":"bob","chat_content":"hello"}`)
	c, err := ParseChat(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := plainChat(body); !ok {
		t.Fatal("the usual body does not take the fast path")
	}
	clear(body)
	if string(c.From) != `"alice"` || string(c.To) != `"bob"` || string(c.Content) != `"hello"` {
		t.Fatalf("fields changed with the body: %q %q %q", c.From, c.To, c.Content)
	}
}

func BenchmarkParseChat(b *testing.B) {
	body := []byte(`{"chat_from":"s17","chat_to":"r17","chat_content":"1234 1733540000000000000"}`)
	b.Run("ParseChat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseChat(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c Chat
			if err := json.Unmarshal(body, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
