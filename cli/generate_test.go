package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGenerateLengthAndAlphabet(t *testing.T) {
	for name := range alphabets {
		alpha, err := parseAlphabet(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 32, 200} {
			s, err := generate(rand.Reader, alpha, n)
			if err != nil {
				t.Fatal(err)
			}
			if utf8.RuneCountInString(s) != n {
				t.Fatalf("%s: length %d, want %d", name, utf8.RuneCountInString(s), n)
			}
			for _, r := range s {
				if !strings.ContainsRune(alphabets[name], r) {
					t.Fatalf("%s: %q is not in the alphabet", name, r)
				}
			}
		}
	}
	alpha, err := parseAlphabet("custom:äö€äö")
	if err != nil || len(alpha) != 3 {
		t.Fatalf("custom alphabet: %q %v", alpha, err)
	}
	s, _ := generate(rand.Reader, alpha, 50)
	if strings.Trim(s, "äö€") != "" || utf8.RuneCountInString(s) != 50 {
		t.Fatalf("custom: %q", s)
	}
	for _, bad := range []string{"emoji", "custom:", "custom:aaaa", "custom:\xff\xfe"} {
		if _, err := parseAlphabet(bad); err == nil {
			t.Errorf("parseAlphabet(%q) accepted", bad)
		}
	}
}

func u32s(vs ...uint32) *bytes.Reader {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return bytes.NewReader(b)
}

// TestUniformIndexRejects checks the rejection sampling: values at or above
// floor(2^32/n)*n are thrown away (they would favour small indices), values
// below are reduced modulo n.
func TestUniformIndexRejects(t *testing.T) {
	const n = 62
	limit := rejectionLimit(n)
	if limit%n != 0 || limit > 1<<32 || (1<<32)-limit >= n {
		t.Fatalf("limit %d for n = %d", limit, n)
	}
	// The first two draws are in the biased tail and must be skipped.
	r := u32s(uint32(limit), 0xFFFFFFFF, uint32(limit-1))
	i, err := uniformIndex(r, n)
	if err != nil {
		t.Fatal(err)
	}
	if want := int((limit - 1) % n); i != want {
		t.Fatalf("index %d, want %d", i, want)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes left: rejected draws were not consumed", r.Len())
	}
	// Only biased values and then nothing: an error, not a biased answer.
	if _, err := uniformIndex(u32s(0xFFFFFFFF), n); err == nil {
		t.Fatal("no error when the random source ran out")
	}
	// A power of two divides 2^32: nothing is rejected.
	if rejectionLimit(16) != 1<<32 {
		t.Fatal("n = 16 rejects values")
	}
	// Exactly floor(2^32/n) values map to each index: uniform.
	for _, m := range []uint32{3, 10, 62, 91} {
		l := rejectionLimit(m)
		if l/uint64(m) != (1<<32)/uint64(m) || l%uint64(m) != 0 {
			t.Fatalf("n = %d: limit %d", m, l)
		}
	}
}

func TestGenerateIsRoughlyUniform(t *testing.T) {
	alpha, _ := parseAlphabet("digits")
	s, err := generate(rand.Reader, alpha, 100000)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[rune]int{}
	for _, r := range s {
		counts[r]++
	}
	for r, c := range counts {
		// Expect 10000 each; 5 standard deviations is about ±475.
		if c < 9400 || c > 10600 {
			t.Fatalf("%q drawn %d times out of 100000", r, c)
		}
	}
}
