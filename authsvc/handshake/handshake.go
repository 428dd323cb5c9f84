// Package handshake keeps SRP login state between login/init and
// login/verify in Redis.
//
// The state holds what go-srp's server needs to check the client's proof,
// which includes the verifier and the session key K. It is therefore sealed
// (XChaCha20-Poly1305 under a key derived from the server secret, bound to the
// handshake id) before it reaches Redis, lives at most the configured TTL
// (60 s at most), and is taken with GETDEL: one init allows exactly one
// verify, and a replayed verify finds nothing.
package handshake

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/chacha20poly1305"
)

// State is what verify needs from init.
type State struct {
	// UserID is empty for an identity that does not exist: init answered with
	// made-up values, and verify must fail exactly like a wrong password.
	UserID   string `json:"u"`
	Identity string `json:"i"`
	// Server is go-srp's Server.Marshal().
	Server string `json:"s"`
}

// ErrUnknown means the handshake id is malformed, expired or already used.
var ErrUnknown = errors.New("handshake: unknown or expired")

// Store keeps handshakes.
type Store struct {
	rdb  redis.UniversalClient
	aead cipher.AEAD
	ttl  time.Duration
}

// New returns a Store sealing with key (32 bytes).
func New(rdb redis.UniversalClient, key []byte, ttl time.Duration) (*Store, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return &Store{rdb: rdb, aead: aead, ttl: ttl}, nil
}

const idBytes = 16 // 128 random bits

func redisKey(id string) string { return "zsm:hs:" + id }

func ad(id string) []byte { return []byte("zsm handshake v1\x00" + id) }

// Put stores st under a new random id and returns the id.
func (s *Store) Put(ctx context.Context, st State) (string, error) {
	var raw [idBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	plain, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	blob := s.aead.Seal(nonce, nonce, plain, ad(id))
	ok, err := s.rdb.SetNX(ctx, redisKey(id), blob, s.ttl).Result()
	if err != nil {
		return "", fmt.Errorf("handshake: store: %w", err)
	}
	if !ok {
		return "", errors.New("handshake: id collision")
	}
	return id, nil
}

// ValidID reports whether id has the shape Put makes.
func ValidID(id string) bool {
	if len(id) != base64.RawURLEncoding.EncodedLen(idBytes) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	return err == nil && len(b) == idBytes
}

// Take returns and deletes the state stored under id.
func (s *Store) Take(ctx context.Context, id string) (State, error) {
	if !ValidID(id) {
		return State{}, ErrUnknown
	}
	blob, err := s.rdb.GetDel(ctx, redisKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return State{}, ErrUnknown
	}
	if err != nil {
		return State{}, fmt.Errorf("handshake: take: %w", err)
	}
	ns := s.aead.NonceSize()
	if len(blob) < ns+s.aead.Overhead() {
		return State{}, ErrUnknown
	}
	plain, err := s.aead.Open(nil, blob[:ns], blob[ns:], ad(id))
	if err != nil {
		// Tampered with, or sealed under another server secret.
		return State{}, ErrUnknown
	}
	var st State
	if err := json.Unmarshal(plain, &st); err != nil {
		return State{}, ErrUnknown
	}
	return st, nil
}

// Nonces keeps the challenges of machine logins: a random 32-byte nonce
// per challenge, stored under the token id it was issued for, for at most
// the TTL, and taken with GETDEL, so a nonce answers one login attempt and
// a replay finds nothing. A nonce is no secret (the token signs it in the
// open); what must not happen is its reuse.
type Nonces struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

// NewNonces returns a nonce store whose nonces live ttl.
func NewNonces(rdb redis.UniversalClient, ttl time.Duration) *Nonces {
	return &Nonces{rdb: rdb, ttl: ttl}
}

// TTL is how long a nonce lives.
func (n *Nonces) TTL() time.Duration { return n.ttl }

func nonceKey(tokenID string, nonce []byte) string {
	return "zsm:mn:" + tokenID + ":" + base64.RawURLEncoding.EncodeToString(nonce)
}

// Issue makes a nonce for tokenID and stores it.
func (n *Nonces) Issue(ctx context.Context, tokenID string) ([]byte, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	ok, err := n.rdb.SetNX(ctx, nonceKey(tokenID, nonce), "1", n.ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("handshake: store nonce: %w", err)
	}
	if !ok {
		return nil, errors.New("handshake: nonce collision")
	}
	return nonce, nil
}

// Take spends the nonce issued for tokenID: ErrUnknown when there is none
// (never issued, issued for another token, expired, or spent).
func (n *Nonces) Take(ctx context.Context, tokenID string, nonce []byte) error {
	if len(nonce) != 32 {
		return ErrUnknown
	}
	err := n.rdb.GetDel(ctx, nonceKey(tokenID, nonce)).Err()
	if errors.Is(err, redis.Nil) {
		return ErrUnknown
	}
	if err != nil {
		return fmt.Errorf("handshake: take nonce: %w", err)
	}
	return nil
}
