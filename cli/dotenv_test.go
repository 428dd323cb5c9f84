package cli

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	in := "# comment\n" +
		"\n" +
		"export A=1\n" +
		"  B = two words  # comment\n" +
		"C='single $X \\n'\n" +
		"D=\"dq \\\"x\\\" \\n \\t \\\\ \\$ \\` \\q\"\r\n" +
		"E=\n" +
		"F=a#b\n" +
		"G=\"multi\nline\"\n" +
		"H='multi\nline' # c\n" +
		"export=reserved\n" +
		"I.J-K=dots\n" +
		"L= #only comment\n" +
		"M=it's\n"
	got, err := parseDotenv(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []envEntry{
		{"A", "1", 3},
		{"B", "two words", 4},
		{"C", "single $X \\n", 5},
		{"D", "dq \"x\" \n \t \\ $ ` \\q", 6},
		{"E", "", 7},
		{"F", "a#b", 8},
		{"G", "multi\nline", 9},
		{"H", "multi\nline", 11},
		{"export", "reserved", 13},
		{"I.J-K", "dots", 14},
		{"L", "", 15},
		{"M", "it's", 16},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseDotenvErrors(t *testing.T) {
	for in, want := range map[string]string{
		"A=1\nNOEQ\n":         "line 2: expected '=' after NOEQ",
		"A=1\n\n1A=2\n":       "line 3: expected KEY=VALUE",
		"A=\"x\nB=2\n":        "line 1: A: unterminated double quote",
		"A='x\n":              "line 1: A: unterminated single quote",
		"A=\"x\" y\n":         "line 1: A: unexpected text after the closing quote",
		"A=\"a\nb\" junk\n":   "line 2: A: unexpected text after the closing quote",
		"=x\n":                "line 1: expected KEY=VALUE",
		"export\n":            "line 1: expected '=' after export",
		"A=\"trailing\\":      "line 1: A: unterminated double quote",
		"ok=1\n  bad key=1\n": "line 2: expected '=' after bad",
	} {
		_, err := parseDotenv(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseDotenv(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestQuoteEnvValueRoundTrip(t *testing.T) {
	for _, v := range []string{"", "plain", "a b", "it's", "a\nb", "$HOME", "`x`", "\\", "\"", "#", " lead", "trail ", "\r", "\t", "ünï", "\x00", "a=b", "'\n'"} {
		line := "K=" + quoteEnvValue(v) + "\n"
		got, err := parseDotenv(line)
		if err != nil || len(got) != 1 || got[0].Value != v {
			t.Errorf("value %q: wrote %q, read %+v (%v)", v, line, got, err)
		}
	}
}

func TestValidEnvName(t *testing.T) {
	for name, ok := range map[string]bool{"A": true, "_a1": true, "a_B_9": true, "": false, "1A": false, "a.b": false, "a-b": false, "a/b": false, "ä": false} {
		if validEnvName(name) != ok {
			t.Errorf("validEnvName(%q) = %v", name, !ok)
		}
	}
}

// FuzzParseDotenv: no input panics, and whatever parses writes back (with
// quoteEnvValue, as zsm export does) to a file that parses to the same
// entries.
func FuzzParseDotenv(f *testing.F) {
	for _, s := range []string{"A=1\n", "export B='x'\n", "C=\"a\\nb\"\n", "# c\n\nD= v # c\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := parseDotenv(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		var b strings.Builder
		for _, e := range entries {
			if e.Key == "" || !isKeyChar(e.Key[0], true) {
				t.Fatalf("bad key %q", e.Key)
			}
			b.WriteString(e.Key + "=" + quoteEnvValue(e.Value) + "\n")
		}
		again, err := parseDotenv(b.String())
		if err != nil {
			t.Fatalf("re-parsing %q: %v", b.String(), err)
		}
		if len(again) != len(entries) {
			t.Fatalf("%d entries, then %d", len(entries), len(again))
		}
		for i := range entries {
			if again[i].Key != entries[i].Key || again[i].Value != entries[i].Value {
				t.Fatalf("entry %d: %q=%q became %q=%q", i, entries[i].Key, entries[i].Value, again[i].Key, again[i].Value)
			}
		}
	})
}
