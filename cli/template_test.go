package cli

import (
	"regexp"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	in := "a={{ zsm://v/A }}\nb={{zsm://v/path/B}} c={{   zsm://w/C c  }}\n{{ .Helm }} {{{ zsm://v/D }}}\n"
	segs, err := parseTemplate(in)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	var joined strings.Builder
	for _, s := range segs {
		joined.WriteString(s.Text)
		if s.Ref != nil {
			refs = append(refs, s.Ref.String()+"@"+string(rune('0'+s.Ref.Line)))
		}
	}
	if joined.String() != in {
		t.Fatalf("segments do not add up to the input: %q", joined.String())
	}
	want := []string{"zsm://v/A@1", "zsm://v/path/B@2", "zsm://w/C c@2", "zsm://v/D@3"}
	if strings.Join(refs, " ") != strings.Join(want, " ") {
		t.Fatalf("refs %q, want %q", refs, want)
	}
}

func TestParseTemplateErrors(t *testing.T) {
	for in, want := range map[string]string{
		"x\n{{ zsm://v/A\n}}":          "line 2: unterminated reference",
		"{{ zsm://v/A":                 "line 1: unterminated reference",
		"\n\n{{ zsm://nosl }}":         "line 3: \"zsm://nosl\" is not a reference",
		"{{ zsm:///A }}":               "is not a reference",
		"{{ zsm://v/ }}":               "is not a reference",
		"{{ zsm://v/a\x01b }}":         "is not a reference",
		"ok {{ zsm://v/A }} {{ zsm://": "unterminated",
	} {
		_, err := parseTemplate(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTemplate(%q) = %v, want %q", in, err, want)
		}
	}
}

var looksLikeRef = regexp.MustCompile(`\{\{[ \t]*zsm://`)

// FuzzInjectTemplate: no input panics; a parsed template's segments add up
// to the input exactly, no text segment hides a reference, and every
// reference names a vault and a secret.
func FuzzInjectTemplate(f *testing.F) {
	for _, s := range []string{"a={{ zsm://v/A }}\n", "{{ .x }}", "{{{ zsm://v/A }}}", "{{ zsm://v/A", "x\n{{zsm://a b/c/d}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		segs, err := parseTemplate(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		var b strings.Builder
		for _, s := range segs {
			b.WriteString(s.Text)
			if s.Ref == nil {
				if looksLikeRef.MatchString(s.Text) {
					t.Fatalf("text segment %q hides a reference", s.Text)
				}
				continue
			}
			if s.Ref.Vault == "" || s.Ref.Name == "" || s.Ref.Line < 1 {
				t.Fatalf("bad reference %+v", *s.Ref)
			}
			if want := 1 + strings.Count(in[:strings.Index(in, s.Text)], "\n"); s.Ref.Line < want {
				t.Fatalf("reference %q on line %d, before line %d", s.Text, s.Ref.Line, want)
			}
		}
		if b.String() != in {
			t.Fatalf("segments add up to %q", b.String())
		}
	})
}
