package cli

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

const maxGenerateLength = 4096

var alphabets = map[string]string{
	"alnum":  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	"alpha":  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	"digits": "0123456789",
	"hex":    "0123456789abcdef",
	// Letters, digits and punctuation that need no quoting in most
	// configuration formats: no quotes, backslash, backtick, space or $.
	"symbols": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%&()*+,-./:;<=>?@[]^_{|}~",
}

// parseAlphabet turns --alphabet into its distinct characters.
func parseAlphabet(spec string) ([]rune, error) {
	chars, ok := alphabets[spec]
	if !ok {
		custom, isCustom := strings.CutPrefix(spec, "custom:")
		if !isCustom {
			return nil, usageErr("use alnum, alpha, digits, hex, symbols or custom:CHARS", "unknown alphabet %q", spec)
		}
		if !utf8.ValidString(custom) {
			return nil, usageErr("", "the custom alphabet is not valid UTF-8")
		}
		chars = custom
	}
	var out []rune
	seen := map[rune]bool{}
	for _, r := range chars {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	if len(out) < 2 {
		return nil, usageErr("", "an alphabet needs at least 2 different characters")
	}
	if len(out) > 1<<16 {
		return nil, usageErr("", "the alphabet is too large")
	}
	return out, nil
}

// uniformIndex returns a uniformly random integer in [0, n) read from r.
// It draws 32-bit numbers and rejects those at or above the largest
// multiple of n below 2^32, so every index is equally likely: a plain
// v % n would favour the small indices whenever n does not divide 2^32.
func uniformIndex(r io.Reader, n int) (int, error) {
	if n <= 0 || n > 1<<31 {
		return 0, fmt.Errorf("uniformIndex: n = %d", n)
	}
	limit := rejectionLimit(uint32(n))
	var b [4]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("reading random bytes: %w", err)
		}
		v := binary.BigEndian.Uint32(b[:])
		if uint64(v) < limit {
			return int(uint64(v) % uint64(n)), nil
		}
	}
}

// rejectionLimit is the number of 32-bit values accepted for modulus n:
// floor(2^32 / n) * n.
func rejectionLimit(n uint32) uint64 {
	return (1 << 32) / uint64(n) * uint64(n)
}

// generate makes a random string of length characters from alphabet.
func generate(r io.Reader, alphabet []rune, length int) (string, error) {
	var b strings.Builder
	for range length {
		i, err := uniformIndex(r, len(alphabet))
		if err != nil {
			return "", err
		}
		b.WriteRune(alphabet[i])
	}
	return b.String(), nil
}
