package appfile

import (
	"fmt"
	"strings"
)

// Environment values: a string value of [runner] or [service.options] may
// take part or all of itself from the environment, in the shell's and
// docker-compose's syntax, so secrets and per-host values stay out of the
// file:
//
//	${VAR}          the value of VAR; an error naming VAR and the line when unset
//	${VAR:-text}    the value of VAR, or text when VAR is unset or empty
//	$$              a literal $ (a $ before anything but { or $ is literal too)
//
// Substitution happens once, on the value as TOML decoded it: a value
// taken from the environment is never expanded again, and numbers and
// true/false are not expanded (write port = "${PORT}").

// expand substitutes the environment into s. It returns the result and
// where each part came from ("$PORT", "default of unset $HOST"), or an
// error naming the first unset variable or the bad reference.
func expand(s string, lookup func(string) (string, bool)) (string, []string, error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	var from []string
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) || s[i+1] != '{' && s[i+1] != '$' {
			b.WriteByte(s[i])
			continue
		}
		if s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", nil, fmt.Errorf("%q: ${ without a closing } (write $$ for a literal $)", s)
		}
		ref := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validName(name) {
			return "", nil, fmt.Errorf("%q: ${%s} is not ${NAME} or ${NAME:-default} (NAME: letters, digits, _)", s, ref)
		}
		v, set := lookup(name)
		switch {
		case hasDef && v == "":
			v = def
			if set {
				from = append(from, "default of empty $"+name)
			} else {
				from = append(from, "default of unset $"+name)
			}
		case !set:
			return "", nil, fmt.Errorf("%q: environment variable %s is not set (${%s:-VALUE} gives a default)", s, name, name)
		default:
			from = append(from, "$"+name)
		}
		b.WriteString(v)
		i += end
	}
	return b.String(), from, nil
}

// validName reports whether name is a shell variable name.
func validName(name string) bool {
	for i, c := range name {
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return name != ""
}

// expandValue substitutes the environment into a string value or the
// strings of a list; other values are returned as they are.
func expandValue(v any, lookup func(string) (string, bool)) (any, []string, error) {
	switch v := v.(type) {
	case string:
		return expand(v, lookup)
	case []any:
		out := make([]any, len(v))
		var from []string
		for i, el := range v {
			x, f, err := expandValue(el, lookup)
			if err != nil {
				return nil, nil, err
			}
			out[i], from = x, append(from, f...)
		}
		return out, from, nil
	}
	return v, nil, nil
}
