package keys_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"regexp"
	"strings"
	"testing"

	"zsm.dev/zsm/sdk/keys"
)

var textForm = regexp.MustCompile(`^ZSM1-[A-Z2-7]{6}-[A-Z2-7]{6}-[A-Z2-7]{6}-[A-Z2-7]{6}-[A-Z2-7]{2}$`)

func TestSecretKeyText(t *testing.T) {
	for i := 0; i < 1000; i++ {
		k, err := keys.NewSecretKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s := k.Text()
		if !textForm.MatchString(s) {
			t.Fatalf("Text() = %q", s)
		}
		for _, variant := range []string{
			s,
			strings.ToLower(s),
			strings.ReplaceAll(s, "-", " "),
			"ZSM1-" + strings.ReplaceAll(s[5:], "-", ""),
			"  " + s[:12] + "\n" + s[12:] + "\t\r\n",
			"zsm1-" + strings.ReplaceAll(s[5:], "-", "--"),
			"ZSM1" + strings.ReplaceAll(s[5:], "-", ""),
		} {
			got, err := keys.ParseSecretKey(variant)
			if err != nil || got != k {
				t.Fatalf("ParseSecretKey(%q) = %v, %v", variant, got.Text(), err)
			}
		}
	}
	if got := (keys.SecretKey{}).Text(); got != "ZSM1-AAAAAA-AAAAAA-AAAAAA-AAAAAA-AA" {
		t.Errorf("zero key Text() = %q", got)
	}
	ff := keys.SecretKey(bytes.Repeat([]byte{0xff}, 16))
	if got := ff.Text(); got != "ZSM1-777777-777777-777777-777777-74" {
		t.Errorf("all-ones key Text() = %q", got)
	}
}

func TestParseSecretKeyRefusals(t *testing.T) {
	good := "ZSM1-777777-777777-777777-777777-74"
	if _, err := keys.ParseSecretKey(good); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"empty":                "",
		"no prefix":            "777777-777777-777777-777777-74",
		"other version":        "ZSM2-777777-777777-777777-777777-74",
		"one char short":       good[:len(good)-1],
		"one char long":        good + "A",
		"15 bytes":             "ZSM1-777777-777777-777777-7777",
		"17 bytes":             "ZSM1-777777-777777-777777-777777-7777",
		"non-zero unused bits": "ZSM1-777777-777777-777777-777777-77",
		"digit 0":              "ZSM1-077777-777777-777777-777777-74",
		"digit 1":              "ZSM1-177777-777777-777777-777777-74",
		"digit 8":              "ZSM1-877777-777777-777777-777777-74",
		"padding":              good + "======",
		"underscore":           "ZSM1_777777-777777-777777-777777-74",
		"long s folds to S":    "ZSM1-\u017f77777-777777-777777-777777-74",
		"fullwidth A":          "ZSM1-\uff2177777-777777-777777-777777-74",
		"dotless i":            "ZSM1-\u013177777-777777-777777-777777-74",
		"non-breaking space":   "ZSM1-777777\u00a0777777-777777-777777-74",
		"huge":                 "ZSM1-" + strings.Repeat("-", 1<<20) + "777777777777777777777777" + "74",
		"NUL":                  "ZSM1-777777-777777-777777-777777-74\x00",
		"prefix at the end":    "777777-777777-777777-777777-74-ZSM1",
	} {
		if _, err := keys.ParseSecretKey(s); !errors.Is(err, keys.ErrSecretKey) {
			t.Errorf("%s: ParseSecretKey(%q) err = %v", name, s, err)
		}
	}
	if _, err := keys.NewSecretKey(bytes.NewReader(make([]byte, 15))); err == nil {
		t.Error("NewSecretKey succeeded with 15 bytes of randomness")
	}
}

func FuzzParseSecretKey(f *testing.F) {
	f.Add("ZSM1-777777-777777-777777-777777-74")
	f.Add("zsm1-aaaaaa aaaaaa aaaaaa aaaaaa aa")
	f.Add("ZSM1-777777-777777-777777-777777-77")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := keys.ParseSecretKey(s)
		if err != nil {
			return
		}
		// Every accepted spelling names the key whose canonical text
		// parses back to it.
		k2, err := keys.ParseSecretKey(k.Text())
		if err != nil || k2 != k {
			t.Fatalf("%q parsed, but its Text() %q does not round-trip", s, k.Text())
		}
	})
}
