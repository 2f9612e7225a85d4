package wire

import "encoding/json"

// ParseChat decodes the body of CmdSingle, CmdGroup or CmdBroadcast as
// json.Unmarshal into a Chat would, with the same result and the same
// errors. A body in the shape every client sends (the three keys spelled
// as documented, string values) is read without the decoder's reflection,
// which costs a chat server more than any other step of relaying a direct
// message; anything else goes to the decoder. Like json.Unmarshal, the
// fields it returns do not alias body.
func ParseChat(body []byte) (Chat, error) {
	if c, ok := plainChat(body); ok {
		return c, nil
	}
	var c Chat
	err := json.Unmarshal(body, &c)
	return c, err
}

// plainChat reads body if it is an object of chat_from, chat_to and
// chat_content, each a string, in any order, with nothing between tokens
// but JSON whitespace; it reports false for anything else.
func plainChat(body []byte) (Chat, bool) {
	var c Chat
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return Chat{}, false
	}
	// One copy, which the fields share: the caller owns them, as it owns
	// what json.Unmarshal returns.
	var own []byte
	for i = skipSpace(body, i+1); ; {
		if i < len(body) && body[i] == '}' && own == nil {
			break // {}
		}
		ks, ke, ok := scanString(body, i)
		if !ok {
			return Chat{}, false
		}
		var field *json.RawMessage
		switch string(body[ks+1 : ke-1]) {
		case "chat_from":
			field = &c.From
		case "chat_to":
			field = &c.To
		case "chat_content":
			field = &c.Content
		default:
			return Chat{}, false // the decoder matches keys without regard to case
		}
		i = skipSpace(body, ke)
		if i == len(body) || body[i] != ':' {
			return Chat{}, false
		}
		vs, ve, ok := scanString(body, skipSpace(body, i+1))
		if !ok {
			return Chat{}, false
		}
		if own == nil {
			own = append([]byte(nil), body...)
		}
		*field = own[vs:ve:ve] // a later key of the same name wins, as with the decoder
		i = skipSpace(body, ve)
		if i == len(body) {
			return Chat{}, false
		}
		if body[i] == '}' {
			break
		}
		if body[i] != ',' {
			return Chat{}, false
		}
		i = skipSpace(body, i+1)
	}
	if skipSpace(body, i+1) != len(body) {
		return Chat{}, false
	}
	return c, true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the bounds [start, end) of the valid JSON string that
// begins at i, quotes included.
func scanString(b []byte, i int) (start, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return i, j + 1, true
		case c < 0x20:
			return 0, 0, false
		case c == '\\':
			j++
			if j == len(b) {
				return 0, 0, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
					return 0, 0, false
				}
				j += 4
			default:
				return 0, 0, false
			}
		}
	}
	return 0, 0, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
