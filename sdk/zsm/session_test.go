package zsm

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/keys"
)

// A sealed session keeps the X-Wing key, and sealing never wipes the key it
// holds (its seed must survive any number of reseals).
func TestSessionKeepsTheXWingKey(t *testing.T) {
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := ak.AddXWing(rand.Reader); err != nil {
		t.Fatal(err)
	}
	want := ak.XWing.PublicKey().Bytes()
	s := &Session{Server: "http://x", Identity: "a@example.com", UserID: uuid.New(), Keys: ak}
	sealed, key, err := SealSession(s)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if sealed, err = ResealSession(s, key); err != nil {
			t.Fatal(err)
		}
	}
	got, err := OpenSession(sealed, key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Keys.XWing == nil || !bytes.Equal(got.Keys.XWing.PublicKey().Bytes(), want) {
		t.Fatal("the reopened session has another X-Wing key")
	}
	seed, err := ak.XWing.Bytes()
	if err != nil || bytes.Equal(seed, make([]byte, 32)) {
		t.Fatalf("sealing wiped the live key's seed: %v", err)
	}
	// A session of an account without the hybrid key stays without it.
	ak.XWing = nil
	sealed, key, err = SealSession(s)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenSession(sealed, key); err != nil || got.Keys.XWing != nil {
		t.Fatalf("version 1 session: %v", err)
	}
}
