package srplogin

import (
	"bytes"
	"fmt"
	"math/big"
	"testing"

	"zsm.dev/zsm/srpgroup"
)

// The made-up verifier is what a sign-up could have stored (1 < v < N-1,
// as srpgroup.Verifier requires), the same for the same identity and
// server secret, and different for another identity or secret.
func TestFakeVerifier(t *testing.T) {
	s, err := newFaker(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	other, err := newFaker(bytes.Repeat([]byte{2}, 32))
	if err != nil {
		t.Fatal(err)
	}
	nMinus1 := new(big.Int).Sub(srpgroup.N, big.NewInt(1))
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		id := fmt.Sprintf("nobody-%d@example.test", i)
		v := s.fakeVerifier(id)
		x := new(big.Int).SetBytes(v)
		if x.Cmp(big.NewInt(1)) <= 0 || x.Cmp(nMinus1) >= 0 {
			t.Fatalf("%s: made-up verifier outside 1 < v < N-1", id)
		}
		if _, err := srpgroup.Verifier(id, s.fakeSalt(id), v); err != nil {
			t.Fatalf("%s: go-srp does not take the made-up verifier: %v", id, err)
		}
		if !bytes.Equal(v, s.fakeVerifier(id)) {
			t.Fatalf("%s: made-up verifier changed between calls", id)
		}
		if bytes.Equal(v, other.fakeVerifier(id)) {
			t.Fatalf("%s: made-up verifier does not depend on the server secret", id)
		}
		if seen[string(v)] {
			t.Fatalf("%s: two identities share a made-up verifier", id)
		}
		seen[string(v)] = true
	}
}

// BenchmarkFakeVerifier shows the made-up verifier costs microseconds, not
// an exponentiation (go test -bench FakeVerifier ./authsvc/srplogin/).
func BenchmarkFakeVerifier(b *testing.B) {
	s, err := newFaker(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		s.fakeVerifier(fmt.Sprintf("nobody-%d@example.test", i))
	}
}
