// Package offline is the encrypted offline cache of `zsm run`, `read` and
// `export` (docs/crypto.md §14): the server's answers for a vault, kept
// after they were verified, so that a short outage of the server does not
// stop a deploy.
//
// What is kept is ciphertext only: the rows exactly as the server sent
// them (envelopes the server could not open either), sealed once more with
// XChaCha20-Poly1305 under a key only the client has (a machine token's
// cache key, or a key derived from a person's account key), together with
// the time they were fetched. A cached copy is used only when the server
// cannot be reached and only while it is younger than the caller's maximum
// age; the caller verifies it exactly as if it had just come from the
// server. One file per principal and vault:
//
//	<dir>/<principal id>/<vault id>.zsmc
//	  = "zsmc1" || nonce (24) || XChaCha20-Poly1305(key, nonce,
//	        u64be(fetched, unix milliseconds) || data,
//	        ad = "zsm v1 offline-cache" || 0x00 || principal (16) || vault (16))
//
// The associated data binds a file to its principal and vault, so a file
// copied to another name, or from another token's directory, does not open.
package offline

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// magic opens every cache file.
const magic = "zsmc1"

// MaxData bounds what one vault's cached answers may hold.
const MaxData = 64 << 20

const adLabel = "zsm v1 offline-cache"

// Errors of Get; each says why there is no usable copy.
var (
	// ErrMissing: nothing is cached for the vault.
	ErrMissing = errors.New("offline: no cached copy")
	// ErrTooOld: the copy is older than the maximum age (or from the
	// future, beyond a minute of clock skew).
	ErrTooOld = errors.New("offline: the cached copy is too old")
	// ErrTampered: the file does not open under this cache's key, for this
	// principal and vault.
	ErrTampered = errors.New("offline: the cached copy is damaged or not this cache's")
)

// Key is a cache key; it prints "[redacted]" everywhere.
type Key struct{ b *[32]byte }

// NewKey takes a 32-byte cache key (a machine token's, machinetoken.Keys.CacheKey).
func NewKey(b []byte) (Key, error) {
	if len(b) != 32 {
		return Key{}, errors.New("offline: a cache key is 32 bytes")
	}
	var k [32]byte
	copy(k[:], b)
	return Key{&k}, nil
}

// AccountCacheKey derives a person's cache key from the account key:
// HKDF-SHA256(ikm = account key, salt = user id (16 bytes),
// info = "zsm v1 offline cache", 32 bytes).
func AccountCacheKey(accountKey []byte, userID uuid.UUID) (Key, error) {
	if len(accountKey) != 32 {
		return Key{}, errors.New("offline: the account key is 32 bytes")
	}
	b, err := hkdf.Key(sha256.New, accountKey, userID[:], "zsm v1 offline cache", 32)
	if err != nil {
		return Key{}, err
	}
	defer clear(b)
	return NewKey(b)
}

func (Key) String() string               { return "[redacted]" }
func (Key) GoString() string             { return "[redacted]" }
func (Key) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, "[redacted]") }
func (Key) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }
func (Key) LogValue() slog.Value         { return slog.StringValue("[redacted]") }

// Cache is one principal's cache in a directory.
type Cache struct {
	dir       string // <root>/<principal>
	principal uuid.UUID
	aead      cipher.AEAD
}

// Open returns the cache of principal (a token id or a user id) under root.
// Nothing is created until Put.
func Open(root string, principal uuid.UUID, key Key) (*Cache, error) {
	if root == "" || key.b == nil {
		return nil, errors.New("offline: a directory and a key are required")
	}
	aead, err := chacha20poly1305.NewX(key.b[:])
	if err != nil {
		return nil, err
	}
	return &Cache{dir: filepath.Join(root, principal.String()), principal: principal, aead: aead}, nil
}

func (c *Cache) path(vault uuid.UUID) string { return filepath.Join(c.dir, vault.String()+".zsmc") }

func (c *Cache) ad(vault uuid.UUID) []byte {
	ad := make([]byte, 0, len(adLabel)+1+32)
	ad = append(ad, adLabel...)
	ad = append(ad, 0)
	ad = append(ad, c.principal[:]...)
	return append(ad, vault[:]...)
}

// Seal returns the file bytes for data fetched at fetched.
func (c *Cache) Seal(vault uuid.UUID, fetched time.Time, data []byte) ([]byte, error) {
	return c.seal(rand.Reader, vault, fetched, data)
}

// seal is Seal with the nonce read from r.
func (c *Cache) seal(r io.Reader, vault uuid.UUID, fetched time.Time, data []byte) ([]byte, error) {
	if len(data) > MaxData {
		return nil, fmt.Errorf("offline: %d bytes is more than a cached vault may hold", len(data))
	}
	plain := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint64(plain, uint64(fetched.UnixMilli()))
	plain = append(plain, data...)
	defer clear(plain)
	out := make([]byte, len(magic)+chacha20poly1305.NonceSizeX, len(magic)+chacha20poly1305.NonceSizeX+len(plain)+c.aead.Overhead())
	copy(out, magic)
	nonce := out[len(magic):]
	if _, err := io.ReadFull(r, nonce); err != nil {
		return nil, err
	}
	return c.aead.Seal(out, nonce, plain, c.ad(vault)), nil
}

// OpenFile reads file bytes made by Seal for vault: the data and when it
// was fetched. Anything else is ErrTampered.
func (c *Cache) OpenFile(vault uuid.UUID, file []byte) ([]byte, time.Time, error) {
	head := len(magic) + chacha20poly1305.NonceSizeX
	if len(file) < head+8+c.aead.Overhead() || string(file[:len(magic)]) != magic ||
		len(file) > head+8+MaxData+c.aead.Overhead() {
		return nil, time.Time{}, ErrTampered
	}
	plain, err := c.aead.Open(nil, file[len(magic):head], file[head:], c.ad(vault))
	if err != nil {
		return nil, time.Time{}, ErrTampered
	}
	ms := binary.BigEndian.Uint64(plain[:8])
	if ms > 1<<62 {
		return nil, time.Time{}, ErrTampered
	}
	return plain[8:], time.UnixMilli(int64(ms)), nil
}

// Put keeps data, the verified server answers for vault fetched at
// fetched, replacing any older copy. The file is written whole and
// renamed into place, readable by its owner only.
func (c *Cache) Put(vault uuid.UUID, fetched time.Time, data []byte) error {
	file, err := c.Seal(vault, fetched, data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	tmp, err := os.CreateTemp(c.dir, ".put-*")
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(file); err != nil {
		tmp.Close()
		return fmt.Errorf("offline: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path(vault)); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	return nil
}

// Get returns the cached answers for vault if they are at most maxAge old
// at now, and when they were fetched.
func (c *Cache) Get(vault uuid.UUID, maxAge time.Duration, now time.Time) ([]byte, time.Time, error) {
	file, err := os.ReadFile(c.path(vault))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, ErrMissing
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("offline: %w", err)
	}
	data, fetched, err := c.OpenFile(vault, file)
	if err != nil {
		return nil, time.Time{}, err
	}
	age := now.Sub(fetched)
	if age > maxAge || age < -time.Minute {
		return nil, fetched, fmt.Errorf("%w: fetched %s ago, the limit is %s", ErrTooOld, age.Round(time.Second), maxAge)
	}
	return data, fetched, nil
}

// Remove deletes this principal's whole cache (logout, a revoked token).
func (c *Cache) Remove() error {
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	return nil
}

// Vaults lists the vaults this cache holds a copy of (in no order).
func (c *Cache) Vaults() ([]uuid.UUID, error) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	var out []uuid.UUID
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".zsmc")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if id, err := uuid.Parse(name); err == nil && id.String() == name {
			out = append(out, id)
		}
	}
	return out, nil
}

// Dir is the directory of this principal's cache (its state file lives
// there too).
func (c *Cache) Dir() string { return c.dir }
