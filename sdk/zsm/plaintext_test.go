package zsm

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
)

// The plaintext rules of docs/protocol.md: a reader ignores members it does
// not know (a later version may add some), and refuses a secret or vault
// name, or a value, that is not a string, and a plaintext that is not a
// JSON object.
func TestPlaintextMembers(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	v := Vault{ID: uuid.New(), st: &vaultState{gen: 1, keys: map[uint64][]byte{1: key}}}
	c := &Client{state: NewMemState()}
	secret := func(plain string) (Secret, error) {
		id := uuid.New()
		ct, err := envelope.SealString(key, envelope.Context{Type: envelope.Secret, VaultID: v.ID, ObjectID: id, Revision: 1}, []byte(plain), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return c.openSecret(v, id, secretRow{ID: id, VaultID: v.ID, Revision: 1, Ciphertext: ct})
	}
	for _, tc := range []struct {
		plain, name, value string
	}{
		{`{"name":"A","value":"b"}`, "A", "b"},
		{`{"value":"b","name":"A"}`, "A", "b"},
		{`{"name":"A","value":"b","expires":"2030-01-01","tags":["x"],"v":2}`, "A", "b"},
		{`{"name":"A"}`, "A", ""},
		{`{"name":"\u003cA\u003e","value":"x\u0026y"}`, "<A>", "x&y"},
	} {
		s, err := secret(tc.plain)
		if err != nil || s.Name != tc.name || s.Value != tc.value {
			t.Errorf("%s: %q %q %v, want %q %q", tc.plain, s.Name, s.Value, err, tc.name, tc.value)
		}
	}
	for _, plain := range []string{`{"name":"A","value":1}`, `{"name":2,"value":"b"}`, `{"name":"A","value":null`, `["A","b"]`, `"A"`, ``} {
		if _, err := secret(plain); !errors.Is(err, ErrTampered) {
			t.Errorf("%q: %v, want ErrTampered", plain, err)
		}
	}
}
