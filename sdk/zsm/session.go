package zsm

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"

	"zsm.dev/zsm/sdk/keys"
)

// Session is an unlocked login: the tokens for the server and the account's
// keys. It is the most sensitive thing the client holds; it never prints
// its contents and is only stored sealed (SealSession).
type Session struct {
	Server       string
	Identity     string
	UserID       uuid.UUID
	SessionID    string
	AccessToken  string
	AccessExpiry time.Time
	RefreshToken string
	KDF          keys.KDFParams
	Keys         *keys.AccountKeys
}

// String names the session without any secret in it.
func (s *Session) String() string {
	return fmt.Sprintf("session %s of %s at %s", s.SessionID, s.Identity, s.Server)
}

// GoString is String, so %#v redacts too.
func (s *Session) GoString() string { return s.String() }

type sessionJSON struct {
	Version      int            `json:"version"`
	Server       string         `json:"server"`
	Identity     string         `json:"identity"`
	UserID       uuid.UUID      `json:"user_id"`
	SessionID    string         `json:"session_id"`
	AccessToken  string         `json:"access_token"`
	AccessExpiry time.Time      `json:"access_expiry"`
	RefreshToken string         `json:"refresh_token"`
	KDF          keys.KDFParams `json:"kdf"`
	AccountKey   []byte         `json:"account_key"`
	X25519       []byte         `json:"x25519"`
	Ed25519Seed  []byte         `json:"ed25519_seed"`
	XWingSeed    []byte         `json:"xwing_seed,omitempty"` // accounts with key bundle version 2
}

const sessionAD = "zsm session v1"

// SealSession encrypts a session under a fresh random key and returns the
// sealed bytes and the key. Whoever holds the key (the OS keyring, or the
// user's ZSM_SESSION variable) can open it; the sealed bytes alone are
// useless.
func SealSession(s *Session) (sealed, key []byte, err error) {
	key = make([]byte, chacha20poly1305.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, err
	}
	sealed, err = ResealSession(s, key)
	return sealed, key, err
}

// ResealSession encrypts a session under an existing key (after a token
// refresh, so the user's exported key stays valid).
func ResealSession(s *Session, key []byte) ([]byte, error) {
	j := sessionJSON{
		Version: 1, Server: s.Server, Identity: s.Identity, UserID: s.UserID, SessionID: s.SessionID,
		AccessToken: s.AccessToken, AccessExpiry: s.AccessExpiry, RefreshToken: s.RefreshToken, KDF: s.KDF,
		AccountKey: s.Keys.AccountKey, X25519: s.Keys.X25519.Bytes(), Ed25519Seed: s.Keys.Ed25519.Seed(),
	}
	if s.Keys.XWing != nil {
		seed, err := s.Keys.XWing.Bytes()
		if err != nil {
			return nil, err
		}
		// Bytes returns the key's own seed: clear a copy, never it.
		j.XWingSeed = bytes.Clone(seed)
		defer clear(j.XWingSeed)
	}
	plain, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, []byte(sessionAD)), nil
}

// ErrSessionKey means a sealed session does not open with the given key.
var ErrSessionKey = errors.New("the session key does not open the stored session (log in again, or export the ZSM_SESSION printed at login)")

// OpenSession decrypts a sealed session.
func OpenSession(sealed, key []byte) (*Session, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, ErrSessionKey
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrSessionKey
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(sessionAD))
	if err != nil {
		return nil, ErrSessionKey
	}
	defer clear(plain)
	var j sessionJSON
	if err := json.Unmarshal(plain, &j); err != nil || j.Version != 1 {
		return nil, errors.New("stored session has an unknown format; log in again")
	}
	x, err := ecdh.X25519().NewPrivateKey(j.X25519)
	if err != nil || len(j.Ed25519Seed) != ed25519.SeedSize || len(j.AccountKey) != 32 {
		return nil, errors.New("stored session is damaged; log in again")
	}
	ak := &keys.AccountKeys{AccountKey: j.AccountKey, X25519: x, Ed25519: ed25519.NewKeyFromSeed(j.Ed25519Seed)}
	if j.XWingSeed != nil {
		if ak.XWing, err = hpke.MLKEM768X25519().NewPrivateKey(j.XWingSeed); err != nil {
			return nil, errors.New("stored session is damaged; log in again")
		}
		clear(j.XWingSeed)
	}
	return &Session{
		Server: j.Server, Identity: j.Identity, UserID: j.UserID, SessionID: j.SessionID,
		AccessToken: j.AccessToken, AccessExpiry: j.AccessExpiry, RefreshToken: j.RefreshToken, KDF: j.KDF,
		Keys: ak,
	}, nil
}

// EncodeSessionKey is the text form of a session key (for ZSM_SESSION).
func EncodeSessionKey(key []byte) string { return base64.RawURLEncoding.EncodeToString(key) }

// DecodeSessionKey parses EncodeSessionKey's output.
func DecodeSessionKey(s string) ([]byte, error) {
	k, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(k) != chacha20poly1305.KeySize {
		return nil, errors.New("ZSM_SESSION is not a session key")
	}
	return k, nil
}
