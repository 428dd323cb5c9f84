package cli

import (
	"fmt"
	"strings"

	"zsm.dev/zsm/sdk/zsm"
)

// tmplSegment is a piece of a template: literal text, or a reference
// (Text is then the reference as written, {{ zsm://VAULT/NAME }}).
type tmplSegment struct {
	Text string
	Ref  *secretRef
}

type secretRef struct {
	Vault, Name string
	Line        int
}

func (r secretRef) String() string { return "zsm://" + r.Vault + "/" + r.Name }

// parseTemplate splits a template into text and {{ zsm://VAULT/NAME }}
// references (spaces inside the braces are optional). A "{{" that does
// not start a zsm:// reference is text (other template languages use it).
// A reference must end with "}}" on the same line and name a valid vault
// and secret; anything else is an error naming the line.
func parseTemplate(s string) ([]tmplSegment, error) {
	var out []tmplSegment
	line := 1
	lit := 0 // start of the pending literal text
	for i := 0; i < len(s); {
		p := strings.Index(s[i:], "{{")
		if p < 0 {
			break
		}
		p += i
		line += strings.Count(s[i:p], "\n")
		q := p + 2
		for q < len(s) && (s[q] == ' ' || s[q] == '\t') {
			q++
		}
		if !strings.HasPrefix(s[q:], "zsm://") {
			i = p + 1 // "{{{ zsm://…" still finds the reference
			continue
		}
		end := strings.Index(s[q:], "}}")
		if end < 0 || strings.ContainsAny(s[q:q+end], "\n") {
			return nil, fmt.Errorf("line %d: unterminated reference (write {{ zsm://VAULT/NAME }})", line)
		}
		end += q
		inner := strings.TrimSpace(s[q+len("zsm://") : end])
		vault, name, ok := strings.Cut(inner, "/")
		if !ok || zsm.ValidVaultName(vault) != nil || zsm.ValidSecretName(name) != nil {
			return nil, fmt.Errorf("line %d: %q is not a reference to VAULT/NAME", line, strings.TrimSpace(s[q:end]))
		}
		if lit < p {
			out = append(out, tmplSegment{Text: s[lit:p]})
		}
		out = append(out, tmplSegment{Text: s[p : end+2], Ref: &secretRef{Vault: vault, Name: name, Line: line}})
		i = end + 2
		lit = i
	}
	if lit < len(s) {
		out = append(out, tmplSegment{Text: s[lit:]})
	}
	return out, nil
}
