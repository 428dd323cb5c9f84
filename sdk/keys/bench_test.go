package keys_test

import (
	"crypto/rand"
	"testing"

	"zsm.dev/zsm/sdk/keys"
)

func BenchmarkDeriveFloor(b *testing.B) {
	p, _ := keys.DefaultKDF(rand.Reader)
	sk, _ := keys.NewSecretKey(rand.Reader)
	for b.Loop() {
		if _, err := keys.Derive("correct horse battery staple", sk, "alice@example.com", p); err != nil {
			b.Fatal(err)
		}
	}
}
