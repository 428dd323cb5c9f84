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
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"

	srp "github.com/opencoff/go-srp"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/srpgroup"
)

// Session is what a login or refresh yields: the tokens, and after a login
// the server's proof (already checked by Login) and the account's key
// bundle.
type Session = api.LoginResponse

// APIError is an error answer from authsvc: its status and its body
// (Code, Message, RequestID).
type APIError struct {
	Status int `json:"-"`
	errorBody
}

// errorBody is api.Error under another name: embedded as it is, its name
// would clash with the Error method.
type errorBody = api.Error

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
		if json.Unmarshal(data, &e.errorBody) != nil || e.Code == "" {
			e.Code, e.Message = api.CodeHTTPError, http.StatusText(resp.StatusCode)
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
func (c *Client) Signup(ctx context.Context, identity srpgroup.Identity, secret []byte, kdf api.KDF) (string, error) {
	return c.SignupAccount(ctx, Account{Identity: identity, Secret: secret, KDF: kdf})
}

// Account is what SignupAccount registers.
type Account struct {
	UserID    string // optional, a random uuid the key bundle is bound to
	Identity  srpgroup.Identity
	Secret    []byte // the SRP secret; only the verifier derived from it is sent
	KDF       api.KDF
	KeyBundle json.RawMessage // optional
	// KeyRecordSignature is the account's signature over its key record
	// (docs/crypto.md §3); required with a key bundle.
	KeyRecordSignature string
}

// SignupAccount registers an account with an optional user id and key bundle.
func (c *Client) SignupAccount(ctx context.Context, a Account) (string, error) {
	if a.Identity.IsZero() {
		return "", srpgroup.ErrIdentity
	}
	reg, err := srpgroup.Register(a.Identity.String(), a.Secret)
	if err != nil {
		return "", err
	}
	rawKDF, err := json.Marshal(a.KDF)
	if err != nil {
		return "", err
	}
	var out api.SignupResponse
	err = c.Do(ctx, http.MethodPost, api.PathSignup, api.SignupRequest{
		UserID: a.UserID, Identity: a.Identity.String(), KDF: rawKDF, KeyBundle: a.KeyBundle, KeyRecordSignature: a.KeyRecordSignature,
		SRPSalt:     hex.EncodeToString(reg.Salt),
		SRPVerifier: srpgroup.FormatPublic(new(big.Int).SetBytes(reg.Verifier)),
	}, &out)
	return out.UserID, err
}

// Params fetches the account's KDF parameters.
func (c *Client) Params(ctx context.Context, identity srpgroup.Identity) (api.KDF, error) {
	var out api.ParamsResponse
	err := c.Do(ctx, http.MethodPost, api.PathLoginParams, api.ParamsRequest{Identity: identity.String()}, &out)
	return out.KDF, err
}

// Derive turns the server's KDF parameters into the SRP secret. It must
// refuse parameters below its own floor.
type Derive func(api.KDF) ([]byte, error)

// Login runs the whole SRP exchange: params, init, verify, and the check of
// the server's proof.
func (c *Client) Login(ctx context.Context, identity srpgroup.Identity, derive Derive) (Session, error) {
	kdf, err := c.Params(ctx, identity)
	if err != nil {
		return Session{}, err
	}
	secret, err := derive(kdf)
	if err != nil {
		return Session{}, err
	}
	return c.LoginWithSecret(ctx, identity, secret)
}

// LoginWithSecret runs init and verify with an SRP secret derived already
// (for instance from parameters the device cached).
func (c *Client) LoginWithSecret(ctx context.Context, identity srpgroup.Identity, secret []byte) (Session, error) {
	x, err := beginSRP(identity, secret)
	if err != nil {
		return Session{}, err
	}
	var ch api.Challenge
	if err := c.Do(ctx, http.MethodPost, api.PathLoginInit, api.InitRequest{Identity: identity.String(), A: x.A}, &ch); err != nil {
		return Session{}, err
	}
	m, err := x.proof(ch)
	if err != nil {
		return Session{}, err
	}
	var out Session
	if err := c.Do(ctx, http.MethodPost, api.PathLoginVerify, api.VerifyRequest{
		HandshakeID: ch.HandshakeID, M: m, DeviceLabel: c.DeviceLabel,
	}, &out); err != nil {
		return Session{}, err
	}
	if !x.cl.ServerOk(out.ServerProof) {
		return Session{}, ErrServerProof
	}
	return out, nil
}

// exchange is the client's side of one SRP exchange (a login, or the
// re-proof of a password change).
type exchange struct {
	cl *srp.Client
	A  string // the client's public value, as the wire has it
}

func beginSRP(identity srpgroup.Identity, secret []byte) (*exchange, error) {
	if identity.IsZero() {
		return nil, srpgroup.ErrIdentity
	}
	cl, err := srpgroup.Env().NewClient([]byte(identity.String()), secret)
	if err != nil {
		return nil, err
	}
	cred := cl.Credentials()
	A, ok := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)
	if !ok {
		return nil, errors.New("authclient: go-srp gave a malformed A")
	}
	return &exchange{cl: cl, A: srpgroup.FormatPublic(A)}, nil
}

// proof checks the server's half of the exchange and returns the client's
// proof M.
func (x *exchange) proof(ch api.Challenge) (string, error) {
	// The server's values get the same scrutiny the server gives ours:
	// B ≡ 0, 1 or N-1 would let whoever sent it predict the session key.
	if _, err := srpgroup.ParsePublic(ch.B); err != nil {
		return "", fmt.Errorf("authclient: server sent an invalid B: %w", err)
	}
	if _, err := srpgroup.ParseSalt(ch.SRPSalt); err != nil {
		return "", fmt.Errorf("authclient: server sent an invalid salt: %w", err)
	}
	m, err := x.cl.Generate(ch.SRPSalt + ":" + ch.B)
	if err != nil {
		return "", fmt.Errorf("authclient: %w", err)
	}
	return m, nil
}

// Refresh exchanges a refresh token for a new session token pair.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Session, error) {
	var out Session
	err := c.Do(ctx, http.MethodPost, api.PathTokenRefresh, api.RefreshRequest{RefreshToken: refreshToken}, &out)
	return out, err
}

// PublishKeyRecord sends the account's key record signature for an account
// made before key records existed (a no-op for one that has its record).
func (c *Client) PublishKeyRecord(ctx context.Context, accessToken, signature string) error {
	return c.do(ctx, http.MethodPost, api.PathKeyRecord, accessToken, api.KeyRecordRequest{KeyRecordSignature: signature}, nil)
}

// UpgradeKeys moves the account to key bundle version 2: bundle is the
// version 2 bundle (the stored version 1 members unchanged), signature the
// version 2 key record's (docs/crypto.md §3, "Upgrade").
func (c *Client) UpgradeKeys(ctx context.Context, accessToken string, bundle json.RawMessage, signature string) error {
	return c.do(ctx, http.MethodPost, api.PathKeyUpgrade, accessToken,
		api.KeyUpgradeRequest{KeyBundle: bundle, KeyRecordSignature: signature}, nil)
}

// Logout ends the session the refresh token belongs to.
func (c *Client) Logout(ctx context.Context, refreshToken string) error {
	return c.Do(ctx, http.MethodPost, api.PathLogout, api.RefreshRequest{RefreshToken: refreshToken}, nil)
}
