// Package authclient is the client side of zsm's sign-up and login: it runs
// SRP-6a against authsvc so that neither the password nor anything derived
// from it that allows guessing it ever leaves the machine, and it checks the
// server's proof before trusting the session.
//
// The caller derives the SRP secret from the password (zsm uses Argon2id and
// the Secret Key; see the SDK's key derivation). This package only needs the
// bytes, and the KDF parameters the server returns are handed to the caller's
// derive function, which must refuse anything weaker than its floor.
package authclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"

	"zsm.dev/zsm/srpgroup"
)

// KDF is the account's password KDF parameters, as authsvc stores them.
type KDF struct {
	Alg         string `json:"alg"`
	Salt        string `json:"salt"`
	MemoryKiB   uint32 `json:"memory_kib"`
	Iterations  uint32 `json:"iterations"`
	Parallelism uint8  `json:"parallelism"`
}

// Session is what a login or refresh yields.
type Session struct {
	UserID       string    `json:"user_id"`
	SessionID    string    `json:"session_id"`
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type"`
	ExpiresIn    int       `json:"expires_in"`
	ExpiresAt    time.Time `json:"expires_at"`
	RefreshToken string    `json:"refresh_token"`
	// KeyBundle is the account's key bundle, sent back by login (not by a
	// refresh); the server cannot open it and the client must not trust it
	// beyond what opening it proves.
	KeyBundle json.RawMessage `json:"key_bundle,omitempty"`
}

// String keeps tokens out of logs and error messages.
func (s Session) String() string {
	return fmt.Sprintf("session %s of user %s (tokens redacted)", s.SessionID, s.UserID)
}

// APIError is an error answer from authsvc.
type APIError struct {
	Status    int    `json:"-"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d, %s, request %s)", e.Message, e.Status, e.Code, e.RequestID)
}

// ErrServerProof means the server could not prove it knows the verifier: it
// is not the server the account was registered with, or something in
// between tampered with the exchange. The session must not be used.
var ErrServerProof = errors.New("authclient: the server's SRP proof is wrong; refusing the session")

// Client talks to authsvc through the gateway.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	HTTP    *http.Client
	// DeviceLabel names the session a login opens (shown in session lists).
	DeviceLabel string
}

// New returns a Client with a bounded timeout.
func New(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Do sends a JSON request and decodes a JSON answer into out (if not nil). An
// error answer becomes *APIError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.do(ctx, method, path, "", in, out)
}

func (c *Client) do(ctx context.Context, method, path, accessToken string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code, e.Message = "http_error", http.StatusText(resp.StatusCode)
		}
		return e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("authclient: %s %s: malformed answer: %w", method, path, err)
		}
	}
	return nil
}

// Signup registers identity with an SRP verifier computed here from secret.
// The secret itself is not sent.
func (c *Client) Signup(ctx context.Context, identity string, secret []byte, kdf KDF) (string, error) {
	return c.SignupAccount(ctx, Account{Identity: identity, Secret: secret, KDF: kdf})
}

// Account is what SignupAccount registers.
type Account struct {
	UserID    string // optional, a random uuid the key bundle is bound to
	Identity  string
	Secret    []byte // the SRP secret; only the verifier derived from it is sent
	KDF       KDF
	KeyBundle json.RawMessage // optional
	// KeyRecordSignature is the account's signature over its key record
	// (docs/crypto.md §3); required with a key bundle.
	KeyRecordSignature string
}

// SignupAccount registers an account with an optional user id and key bundle.
func (c *Client) SignupAccount(ctx context.Context, a Account) (string, error) {
	identity, secret, kdf := a.Identity, a.Secret, a.KDF
	id, err := srpgroup.NormalizeIdentity(identity)
	if err != nil {
		return "", err
	}
	reg, err := srpgroup.Register(id, secret)
	if err != nil {
		return "", err
	}
	var out struct {
		UserID string `json:"user_id"`
	}
	body := map[string]any{
		"identity":     id,
		"srp_salt":     fmt.Sprintf("%x", reg.Salt),
		"srp_verifier": srpgroup.FormatPublic(new(big.Int).SetBytes(reg.Verifier)),
		"kdf":          kdf,
	}
	if a.UserID != "" {
		body["user_id"] = a.UserID
	}
	if len(a.KeyBundle) > 0 {
		body["key_bundle"] = a.KeyBundle
	}
	if a.KeyRecordSignature != "" {
		body["key_record_signature"] = a.KeyRecordSignature
	}
	err = c.Do(ctx, http.MethodPost, "/auth/v1/signup", body, &out)
	return out.UserID, err
}

// Params fetches the account's KDF parameters.
func (c *Client) Params(ctx context.Context, identity string) (KDF, error) {
	id, err := srpgroup.NormalizeIdentity(identity)
	if err != nil {
		return KDF{}, err
	}
	var out struct {
		KDF KDF `json:"kdf"`
	}
	err = c.Do(ctx, http.MethodPost, "/auth/v1/login/params", map[string]string{"identity": id}, &out)
	return out.KDF, err
}

// Derive turns the server's KDF parameters into the SRP secret. It must
// refuse parameters below its own floor.
type Derive func(KDF) ([]byte, error)

// Login runs the whole SRP exchange: params, init, verify, and the check of
// the server's proof.
func (c *Client) Login(ctx context.Context, identity string, derive Derive) (Session, error) {
	id, err := srpgroup.NormalizeIdentity(identity)
	if err != nil {
		return Session{}, err
	}
	kdf, err := c.Params(ctx, id)
	if err != nil {
		return Session{}, err
	}
	secret, err := derive(kdf)
	if err != nil {
		return Session{}, err
	}
	return c.LoginWithSecret(ctx, id, secret)
}

// LoginWithSecret runs init and verify with an SRP secret derived already
// (for instance from parameters the device cached).
func (c *Client) LoginWithSecret(ctx context.Context, identity string, secret []byte) (Session, error) {
	id, err := srpgroup.NormalizeIdentity(identity)
	if err != nil {
		return Session{}, err
	}
	cl, err := srpgroup.Env().NewClient([]byte(id), secret)
	if err != nil {
		return Session{}, err
	}
	cred := cl.Credentials()
	A, ok := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)
	if !ok {
		return Session{}, errors.New("authclient: go-srp gave a malformed A")
	}
	var ch struct {
		HandshakeID string `json:"handshake_id"`
		SRPSalt     string `json:"srp_salt"`
		B           string `json:"b"`
	}
	if err := c.Do(ctx, http.MethodPost, "/auth/v1/login/init", map[string]string{
		"identity": id, "a": srpgroup.FormatPublic(A),
	}, &ch); err != nil {
		return Session{}, err
	}
	// The server's values get the same scrutiny the server gives ours:
	// B ≡ 0, 1 or N-1 would let whoever sent it predict the session key.
	if _, err := srpgroup.ParsePublic(ch.B); err != nil {
		return Session{}, fmt.Errorf("authclient: server sent an invalid B: %w", err)
	}
	if _, err := srpgroup.ParseSalt(ch.SRPSalt); err != nil {
		return Session{}, fmt.Errorf("authclient: server sent an invalid salt: %w", err)
	}
	m, err := cl.Generate(ch.SRPSalt + ":" + ch.B)
	if err != nil {
		return Session{}, fmt.Errorf("authclient: %w", err)
	}
	var out struct {
		Session
		ServerProof string `json:"server_proof"`
	}
	verify := map[string]string{"handshake_id": ch.HandshakeID, "m": m}
	if c.DeviceLabel != "" {
		verify["device_label"] = c.DeviceLabel
	}
	if err := c.Do(ctx, http.MethodPost, "/auth/v1/login/verify", verify, &out); err != nil {
		return Session{}, err
	}
	if !cl.ServerOk(out.ServerProof) {
		return Session{}, ErrServerProof
	}
	return out.Session, nil
}

// Refresh exchanges a refresh token for a new session token pair.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Session, error) {
	var out Session
	err := c.Do(ctx, http.MethodPost, "/auth/v1/token/refresh", map[string]string{"refresh_token": refreshToken}, &out)
	return out, err
}

// PublishKeyRecord sends the account's key record signature for an account
// made before key records existed (a no-op for one that has its record).
func (c *Client) PublishKeyRecord(ctx context.Context, accessToken, signature string) error {
	return c.do(ctx, http.MethodPost, "/auth/v1/keys/record", accessToken, map[string]string{"key_record_signature": signature}, nil)
}

// Logout ends the session the refresh token belongs to.
func (c *Client) Logout(ctx context.Context, refreshToken string) error {
	return c.Do(ctx, http.MethodPost, "/auth/v1/logout", map[string]string{"refresh_token": refreshToken}, nil)
}
