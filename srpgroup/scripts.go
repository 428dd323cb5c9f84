package srpgroup

import (
	"errors"
	"slices"
	"strings"
	"unicode"
)

// Errors of CheckNewIdentity.
var (
	ErrReplacementChar = errors.New("identity contains U+FFFD, the mark of text that was not valid UTF-8")
	ErrMixedScripts    = errors.New("identity mixes writing systems within one part (a Cyrillic or Greek letter in a Latin name, say), so it can pass for another identity")
)

// CheckNewIdentity applies the rules an identity must meet to be
// registered, on top of NormalizeIdentity (it expects the normal form):
//
//   - no U+FFFD, which only stands in for bytes that were not UTF-8;
//   - each part between '@' and '.' is written in one script, besides the
//     characters every script shares (digits, punctuation, combining marks),
//     or in one of the combinations Japanese, Chinese and Korean are written
//     in (Latin with Han and Hiragana/Katakana, Bopomofo or Hangul). This is
//     the "highly restrictive" level of Unicode's UTS #39: "pаypal" with a
//     Cyrillic "а" is refused, "иван@пример.рф" and "paypal" are not.
//
// Existing identities are never checked again (login and password change
// accept them as they are), so tightening the rule locks nobody out. A
// whole part in one script that looks like a word in another ("рау" in
// Cyrillic) passes: users compare safety numbers before they trust a key.
func CheckNewIdentity(identity string) error {
	if strings.ContainsRune(identity, '\uFFFD') {
		return ErrReplacementChar
	}
	for _, part := range strings.FieldsFunc(identity, func(r rune) bool { return r == '@' || r == '.' }) {
		if !singleScript(part) {
			return ErrMixedScripts
		}
	}
	return nil
}

// The script combinations UTS #39 allows at its highly restrictive level.
var allowedMixes = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

func singleScript(s string) bool {
	var seen []string
	for _, r := range s {
		sc := scriptOf(r)
		if sc == "" || slices.Contains(seen, sc) {
			continue
		}
		seen = append(seen, sc)
	}
	if len(seen) <= 1 {
		return true
	}
	for _, mix := range allowedMixes {
		if !slices.ContainsFunc(seen, func(sc string) bool { return !slices.Contains(mix, sc) }) {
			return true
		}
	}
	return false
}

// scriptNames lists unicode.Scripts in a fixed order, the common scripts
// first.
var scriptNames = func() []string {
	first := []string{"Latin", "Cyrillic", "Greek", "Han", "Arabic", "Hebrew", "Hiragana", "Katakana", "Hangul", "Devanagari", "Thai"}
	out := slices.Clone(first)
	var rest []string
	for name := range unicode.Scripts {
		if !slices.Contains(first, name) && name != "Common" && name != "Inherited" {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}()

// scriptOf names r's script, or "" for characters every script uses
// (Common and Inherited: digits, punctuation, combining marks).
func scriptOf(r rune) string {
	switch {
	case r < 0x80:
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return ""
	case unicode.Is(unicode.Common, r), unicode.Is(unicode.Inherited, r):
		return ""
	}
	for _, name := range scriptNames {
		if unicode.Is(unicode.Scripts[name], r) {
			return name
		}
	}
	return "Unknown"
}
