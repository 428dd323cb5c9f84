package offline

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func testKey(t testing.TB) Key {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	k, err := NewKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPutGet(t *testing.T) {
	dir := t.TempDir()
	p, v := uuid.New(), uuid.New()
	c, err := Open(dir, p, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(v, time.Hour, time.Now()); !errors.Is(err, ErrMissing) {
		t.Fatalf("empty cache: %v", err)
	}
	data := []byte(`{"rows":["ciphertext"]}`)
	fetched := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
	if err := c.Put(v, fetched, data); err != nil {
		t.Fatal(err)
	}
	got, at, err := c.Get(v, 10*time.Minute, time.Now())
	if err != nil || !bytes.Equal(got, data) || !at.Equal(fetched) {
		t.Fatalf("Get = %q, %v, %v", got, at, err)
	}
	// Older than the limit; from the future beyond the skew.
	if _, _, err := c.Get(v, 4*time.Minute, time.Now()); !errors.Is(err, ErrTooOld) {
		t.Fatalf("too old: %v", err)
	}
	if _, _, err := c.Get(v, time.Hour, fetched.Add(-2*time.Minute)); !errors.Is(err, ErrTooOld) {
		t.Fatalf("from the future: %v", err)
	}
	// Only the owner reads the files.
	for _, name := range []string{filepath.Join(dir, p.String()), c.path(v)} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s has mode %v", name, fi.Mode())
		}
	}
	// The file holds no part of the data in the clear.
	raw, _ := os.ReadFile(c.path(v))
	if bytes.Contains(raw, []byte("ciphertext")) {
		t.Fatal("the cached data is readable in the file")
	}
	w := uuid.New()
	if err := c.Put(w, fetched, []byte("w")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, p.String(), "not-a-vault.zsmc"), []byte("x"), 0o600)
	if vs, err := c.Vaults(); err != nil || len(vs) != 2 || !(vs[0] == v && vs[1] == w || vs[0] == w && vs[1] == v) {
		t.Fatalf("Vaults = %v, %v", vs, err)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(v, time.Hour, time.Now()); !errors.Is(err, ErrMissing) {
		t.Fatalf("after Remove: %v", err)
	}
}

// TestTampered: a file that is changed, moved to another vault's name,
// copied into another principal's cache or read with another key does not
// open.
func TestTampered(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t)
	p, v, w := uuid.New(), uuid.New(), uuid.New()
	c, _ := Open(dir, p, k)
	file, err := c.Seal(v, time.Now(), []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Open(dir, uuid.New(), k)
	stranger, _ := Open(dir, p, testKey(t))
	for i := range file {
		b := bytes.Clone(file)
		b[i] ^= 1
		if _, _, err := c.OpenFile(v, b); !errors.Is(err, ErrTampered) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for name, f := range map[string]func() error{
		"another vault":     func() error { _, _, err := c.OpenFile(w, file); return err },
		"another principal": func() error { _, _, err := other.OpenFile(v, file); return err },
		"another key":       func() error { _, _, err := stranger.OpenFile(v, file); return err },
		"truncated":         func() error { _, _, err := c.OpenFile(v, file[:len(file)-1]); return err },
		"empty":             func() error { _, _, err := c.OpenFile(v, nil); return err },
	} {
		if err := f(); !errors.Is(err, ErrTampered) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := c.OpenFile(v, file); err != nil {
		t.Fatal(err)
	}
}

func TestKeys(t *testing.T) {
	if _, err := NewKey(make([]byte, 31)); err == nil {
		t.Fatal("31-byte key taken")
	}
	ak := make([]byte, 32)
	rand.Read(ak)
	u := uuid.New()
	a, err := AccountCacheKey(ak, u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := AccountCacheKey(ak, uuid.New())
	if *a.b == *b.b {
		t.Fatal("two users derive one cache key")
	}
	j, _ := json.Marshal(map[string]any{"k": a})
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "k", a)
	for _, s := range []string{fmt.Sprintf("%v %x %#v %s %d", a, a, a, a, a), string(j), logs.String()} {
		if strings.Contains(s, fmt.Sprintf("%x", a.b[:4])) || !strings.Contains(s, "[redacted]") {
			t.Fatalf("key printed: %s", s)
		}
	}
}

// FuzzOpenFile: the file parser never panics, and accepts only what this
// cache sealed for this vault.
func FuzzOpenFile(f *testing.F) {
	k, _ := NewKey(bytes.Repeat([]byte{7}, 32))
	v := uuid.MustParse("0b5c8c4e-3f2a-4d7b-9c1e-2a3b4c5d6e7f")
	c, _ := Open("unused", uuid.MustParse("1b5c8c4e-3f2a-4d7b-9c1e-2a3b4c5d6e7f"), k)
	// A fixed nonce: every fuzzing process must make the same seed.
	good, _ := c.seal(bytes.NewReader(make([]byte, 24)), v, time.UnixMilli(1700000000000), []byte("seed"))
	f.Add(good)
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		data, at, err := c.OpenFile(v, b)
		if err != nil {
			if !errors.Is(err, ErrTampered) || data != nil {
				t.Fatalf("error %v with data %q", err, data)
			}
			return
		}
		if !bytes.Equal(b, good) {
			// Without the key nobody makes another valid file; the fuzzer
			// may only give back the seed.
			t.Fatalf("accepted a file that is not the sealed seed: %q at %v", data, at)
		}
	})
}
