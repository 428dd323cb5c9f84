package cli

import (
	"fmt"
	"strings"
)

// envEntry is one KEY=VALUE of a dotenv file.
type envEntry struct {
	Key   string
	Value string
	Line  int // where the entry starts, from 1
}

// parseDotenv parses a dotenv file:
//
//   - KEY=VALUE per line; an optional "export " before KEY; spaces around
//     "=" are ignored; KEY is [A-Za-z_][A-Za-z0-9_.-]*;
//   - blank lines and lines starting with # are skipped;
//   - 'single quotes' keep everything literally (they may span lines);
//   - "double quotes" may span lines and understand \n \r \t \\ \" \$ and
//     \` (any other backslash stays as it is);
//   - unquoted values are trimmed and end at a # that follows a space or
//     tab (a comment);
//   - after a closing quote only spaces and a comment may follow.
//
// CRLF line endings are read as LF; a UTF-8 byte order mark is skipped.
// Any other line is an error naming its line number.
func parseDotenv(data string) ([]envEntry, error) {
	s := strings.ReplaceAll(strings.TrimPrefix(data, "\ufeff"), "\r\n", "\n")
	var out []envEntry
	line := 1
	i := 0
	for i < len(s) {
		start := line
		j := skipBlank(s, i)
		if j == len(s) {
			break
		}
		switch s[j] {
		case '\n':
			i, line = j+1, line+1
			continue
		case '#':
			i = endOfLine(s, j)
			continue
		}
		if strings.HasPrefix(s[j:], "export") && j+6 < len(s) && (s[j+6] == ' ' || s[j+6] == '\t') {
			j = skipBlank(s, j+6)
		}
		k := j
		for k < len(s) && isKeyChar(s[k], k == j) {
			k++
		}
		key := s[j:k]
		if key == "" {
			return nil, fmt.Errorf("line %d: expected KEY=VALUE (KEY: letters, digits, _ . -, not starting with a digit)", start)
		}
		k = skipBlank(s, k)
		if k >= len(s) || s[k] != '=' {
			return nil, fmt.Errorf("line %d: expected '=' after %s", start, key)
		}
		eq := k + 1
		k = skipBlank(s, eq)
		var value string
		if k < len(s) && (s[k] == '\'' || s[k] == '"') {
			var end int
			var err error
			if s[k] == '\'' {
				value, end, err = singleQuoted(s, k)
			} else {
				value, end, err = doubleQuoted(s, k)
			}
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", start, key, err)
			}
			line += strings.Count(s[k:end], "\n")
			rest := skipBlank(s, end)
			if rest < len(s) && s[rest] != '\n' && s[rest] != '#' {
				return nil, fmt.Errorf("line %d: %s: unexpected text after the closing quote", line, key)
			}
			k = endOfLine(s, rest)
		} else {
			eol := endOfLine(s, k)
			raw := s[eq:eol]
			for c := 1; c < len(raw); c++ {
				if raw[c] == '#' && (raw[c-1] == ' ' || raw[c-1] == '\t') {
					raw = raw[:c]
					break
				}
			}
			value = strings.Trim(raw, " \t\r")
			k = eol
		}
		out = append(out, envEntry{Key: key, Value: value, Line: start})
		i = k
	}
	return out, nil
}

func skipBlank(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// endOfLine returns the index of the '\n' ending the line at i, or len(s).
func endOfLine(s string, i int) int {
	if n := strings.IndexByte(s[i:], '\n'); n >= 0 {
		return i + n
	}
	return len(s)
}

func isKeyChar(c byte, first bool) bool {
	switch {
	case c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z':
		return true
	case first:
		return false
	default:
		return '0' <= c && c <= '9' || c == '.' || c == '-'
	}
}

func singleQuoted(s string, k int) (string, int, error) {
	n := strings.IndexByte(s[k+1:], '\'')
	if n < 0 {
		return "", 0, fmt.Errorf("unterminated single quote")
	}
	return s[k+1 : k+1+n], k + n + 2, nil
}

func doubleQuoted(s string, k int) (string, int, error) {
	var b strings.Builder
	for i := k + 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated double quote")
			}
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '\\', '"', '$', '`':
				b.WriteByte(e)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated double quote")
}

// validEnvName reports whether name can be an environment variable:
// [A-Za-z_][A-Za-z0-9_]*.
func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// quoteEnvValue writes a value so that parseDotenv (and common dotenv
// readers) read it back exactly: bare when it is plainly safe, in single
// quotes when it has no single quote or line break (a shell reads those
// literally too), else in double quotes with \\ \" \$ \` \n \r \t escaped.
func quoteEnvValue(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool { return !isBareChar(r) }) < 0 {
		return v
	}
	if !strings.ContainsAny(v, "'\n\r") {
		return "'" + v + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\', '"', '$', '`':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func isBareChar(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || strings.ContainsRune("_./:@%+,=-", r)
}
