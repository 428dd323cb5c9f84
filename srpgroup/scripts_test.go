package srpgroup

import (
	"errors"
	"testing"
)

func TestCheckNewIdentity(t *testing.T) {
	ok := []string{
		"alice@example.test", "max.müller@beispiel.de", "иван@пример.рф", "ivan@пример.рф", "ελένη@παράδειγμα.gr",
		"たなか漢字@example.jp", "tanaka漢字カナ@example.jp", "김철수@예시.kr", "kim김@example.kr", "王小明ㄅ@example.tw",
		"user_42-x+tag@example.test", "δ1@example.test", "ǆemal@example.test",
	}
	for _, s := range ok {
		n, err := NormalizeIdentity(s)
		if err != nil {
			t.Fatalf("NormalizeIdentity(%q): %v", s, err)
		}
		if err := CheckNewIdentity(n); err != nil {
			t.Errorf("CheckNewIdentity(%q) = %v, want nil", s, err)
		}
	}
	mixed := []string{
		"\u0430lice@example.test",     // Cyrillic а in a Latin name
		"p\u0430ypal@example.test",    // the same inside
		"alice@ex\u0430mple.test",     // in the domain
		"alice@example.t\u0435st",     // Cyrillic е in the top-level domain
		"\u03bfpenai@example.test",    // Greek ο
		"иван\u0061@example.test",     // Latin a in a Cyrillic name
		"ab\u05d0@example.test",       // Hebrew
		"김たなか@example.test",           // Hangul with Hiragana
		"\u0561lice@example.test",     // Armenian
		"x\u0430-\u0441@example.test", // hyphen does not split parts
	}
	for _, s := range mixed {
		n, err := NormalizeIdentity(s)
		if err != nil {
			t.Fatalf("NormalizeIdentity(%q): %v", s, err)
		}
		if err := CheckNewIdentity(n); !errors.Is(err, ErrMixedScripts) {
			t.Errorf("CheckNewIdentity(%q) = %v, want ErrMixedScripts", s, err)
		}
	}
	if err := CheckNewIdentity("a\uFFFDb@example.test"); !errors.Is(err, ErrReplacementChar) {
		t.Errorf("U+FFFD: %v", err)
	}
}
