package cli

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
)

// memKeyring is a keyring in memory; broken makes every call fail, like a
// Secret Service that is not there.
type memKeyring struct {
	m      map[string]string
	broken bool
}

func (k *memKeyring) Get(n string) (string, error) {
	if k.broken {
		return "", errors.New("no keyring")
	}
	v, ok := k.m[n]
	if !ok {
		return "", errors.New("not found")
	}
	return v, nil
}

func (k *memKeyring) Set(n, v string) error {
	if k.broken {
		return errors.New("no keyring")
	}
	k.m[n] = v
	return nil
}

func (k *memKeyring) Delete(n string) error { delete(k.m, n); return nil }

func testSession(t *testing.T) *zsm.Session {
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &zsm.Session{Server: "http://x", Identity: "a@example.test", UserID: uuid.New(), AccessExpiry: time.Now().Add(time.Hour), Keys: ak}
}

func TestKeyringKeepsKeys(t *testing.T) {
	t.Setenv("ZSM_SESSION", "")
	kr := &memKeyring{m: map[string]string{}}
	h := &home{dir: t.TempDir(), kr: kr}
	sk, _ := keys.NewSecretKey(rand.Reader)
	where, err := h.storeSecretKey("acct", sk)
	if err != nil || where != inKeyring {
		t.Fatalf("stored in %q (%v), want the keyring", where, err)
	}
	if _, err := os.Stat(h.path("secret_key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a secret_key file was written although the keyring works")
	}
	if got, ok := h.storedSecretKey("acct", inKeyring); !ok || got != sk {
		t.Fatal("the Secret Key did not come back from the keyring")
	}

	a := &app{stderr: &bytes.Buffer{}}
	accts := &accountsFile{Version: 1, Accounts: map[string]*account{}}
	key, keyIn, err := a.storeSession(h, accts, testSession(t))
	if err != nil || keyIn != inKeyring {
		t.Fatalf("session key in %q (%v)", keyIn, err)
	}
	got, from, err := a.sessionKey(h, accts)
	if err != nil || from != inKeyring || !bytes.Equal(got, key) {
		t.Fatalf("session key from %q: %v", from, err)
	}
	if err := a.dropSession(h, accts); err != nil {
		t.Fatal(err)
	}
	if len(kr.m) != 1 { // only the Secret Key is left
		t.Fatalf("keyring after logout: %v", kr.m)
	}
}

func TestBrokenKeyringFallsBack(t *testing.T) {
	t.Setenv("ZSM_SESSION", "")
	h := &home{dir: t.TempDir(), kr: &memKeyring{broken: true}}
	sk, _ := keys.NewSecretKey(rand.Reader)
	where, err := h.storeSecretKey("acct", sk)
	if err != nil || where != inFile {
		t.Fatalf("stored in %q (%v), want the file", where, err)
	}
	fi, err := os.Stat(filepath.Join(h.dir, "secret_key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret_key: %v %v", fi, err)
	}
	if got, ok := h.storedSecretKey("acct", inFile); !ok || got != sk {
		t.Fatal("the Secret Key did not come back from the file")
	}
	a := &app{stderr: &bytes.Buffer{}}
	accts := &accountsFile{Version: 1, Accounts: map[string]*account{}}
	_, keyIn, err := a.storeSession(h, accts, testSession(t))
	if err != nil || keyIn != inEnv {
		t.Fatalf("session key in %q (%v), want env", keyIn, err)
	}
	if _, _, err := a.sessionKey(h, accts); err == nil {
		t.Fatal("a session opened without ZSM_SESSION")
	}
	fi, err = os.Stat(h.path("session"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session: %v %v", fi, err)
	}
}

func TestKeyringOff(t *testing.T) {
	t.Setenv("ZSM_KEYRING", "off")
	if kr, state := openKeyring(); kr != nil || state != "off" {
		t.Fatalf("ZSM_KEYRING=off: %v %q", kr, state)
	}
}
