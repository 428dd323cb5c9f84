package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// Paths of authsvc's endpoints, as the gateway exposes them.
const (
	PathSignup           = "/auth/v1/signup"
	PathLoginParams      = "/auth/v1/login/params"
	PathLoginInit        = "/auth/v1/login/init"
	PathLoginVerify      = "/auth/v1/login/verify"
	PathTokenRefresh     = "/auth/v1/token/refresh"
	PathLogout           = "/auth/v1/logout"
	PathSessions         = "/auth/v1/sessions" // GET; DELETE PathSessions + "/{id}"
	PathPasswordInit     = "/auth/v1/password/init"
	PathPasswordChange   = "/auth/v1/password/change"
	PathKeyRecord        = "/auth/v1/keys/record"
	PathKeyUpgrade       = "/auth/v1/keys/upgrade"
	PathTokens           = "/auth/v1/tokens" // POST; DELETE PathTokens + "/{id}"
	PathMachineChallenge = "/auth/v1/machine/challenge"
	PathMachineLogin     = "/auth/v1/machine/login"
	PathOpenAPI          = "/auth/v1/openapi.yaml"
	PathJWKS             = "/.well-known/jwks.json"
)

// TokenType is the token_type of every token answer.
const TokenType = "Bearer"

// SignupRequest is the body of POST /auth/v1/signup. KDF stays raw here:
// the server parses it strictly itself, so that a member of the wrong type
// is a refused registration like any other bad parameter.
type SignupRequest struct {
	UserID      string          `json:"user_id,omitempty"` // a random (version 4) uuid the key bundle is bound to
	Identity    string          `json:"identity"`
	SRPSalt     string          `json:"srp_salt"`     // hex
	SRPVerifier string          `json:"srp_verifier"` // a group element in hex
	KDF         json.RawMessage `json:"kdf"`          // a KDF
	KeyBundle   json.RawMessage `json:"key_bundle,omitempty"`
	// KeyRecordSignature proves possession of the bundle's public keys
	// (docs/crypto.md §3); required with a key bundle.
	KeyRecordSignature string `json:"key_record_signature,omitempty"`
}

// SignupResponse is the answer to a sign-up.
type SignupResponse struct {
	UserID   string `json:"user_id"`
	Identity string `json:"identity"` // the normalized identity the account is known by
}

// ParamsRequest is the body of POST /auth/v1/login/params.
type ParamsRequest struct {
	Identity string `json:"identity"`
}

// ParamsResponse is its answer: the account's KDF parameters, made up but
// stable for an identity nobody registered.
type ParamsResponse struct {
	KDF KDF `json:"kdf"`
}

// InitRequest is the body of POST /auth/v1/login/init.
type InitRequest struct {
	Identity string `json:"identity"`
	A        string `json:"a"` // the client's public value, hex
}

// PasswordInitRequest is the body of POST /auth/v1/password/init: A for
// the caller's own identity.
type PasswordInitRequest struct {
	A string `json:"a"`
}

// Challenge is the server's half of an SRP exchange, the answer to
// login/init and password/init.
type Challenge struct {
	HandshakeID string `json:"handshake_id"`
	SRPSalt     string `json:"srp_salt"` // hex
	B           string `json:"b"`        // hex
	KDF         KDF    `json:"kdf"`
}

// VerifyRequest is the body of POST /auth/v1/login/verify.
type VerifyRequest struct {
	HandshakeID string `json:"handshake_id"`
	M           string `json:"m"` // the client's proof, hex
	// DeviceLabel names the session in session lists; the User-Agent
	// stands in when it is empty.
	DeviceLabel string `json:"device_label,omitempty"`
}

// Tokens are what a login or refresh hands the client.
type Tokens struct {
	UserID       string    `json:"user_id"`
	SessionID    string    `json:"session_id"`
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type"` // TokenType
	ExpiresIn    int       `json:"expires_in"` // seconds
	ExpiresAt    time.Time `json:"expires_at"`
	RefreshToken string    `json:"refresh_token"`
}

// String keeps the tokens out of logs and error messages.
func (t Tokens) String() string {
	return fmt.Sprintf("session %s of user %s (tokens redacted)", t.SessionID, t.UserID)
}

// GoString keeps the tokens out of %#v.
func (t Tokens) GoString() string { return t.String() }

// LoginResponse is the answer to login/verify: the tokens, the server's
// proof (to be checked before the tokens are used), and the account's key
// bundle as stored at sign-up (null for an account without one). The
// server cannot open the bundle, and the client must not trust it beyond
// what opening it proves.
type LoginResponse struct {
	Tokens
	ServerProof string          `json:"server_proof"`
	KeyBundle   json.RawMessage `json:"key_bundle"`
}

// RefreshRequest is the body of POST /auth/v1/token/refresh and /logout.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// SessionInfo is one live session of the caller, as GET /auth/v1/sessions
// lists it.
type SessionInfo struct {
	ID            string     `json:"id"`
	DeviceLabel   *string    `json:"device_label"` // the login's device_label or User-Agent; null when none
	ClientAddr    *string    `json:"client_addr"`  // null when unknown
	CreatedAt     time.Time  `json:"created_at"`
	LastUsedAt    time.Time  `json:"last_used_at"` // the last login or refresh
	ExpiresAt     time.Time  `json:"expires_at"`   // the absolute end
	IdleExpiresAt *time.Time `json:"idle_expires_at"`
	Current       bool       `json:"current"` // the session of the presented access token
}

// SessionsResponse is the answer to GET /auth/v1/sessions.
type SessionsResponse struct {
	Sessions []SessionInfo `json:"sessions"`
}

// PasswordChangeRequest is the body of POST /auth/v1/password/change: the
// proof of the current password for a handshake from password/init, and
// the new password's registration with the key bundle re-wrapped under the
// new unlock key. KDF stays raw, as in SignupRequest.
type PasswordChangeRequest struct {
	HandshakeID string          `json:"handshake_id"`
	M           string          `json:"m"`
	SRPSalt     string          `json:"srp_salt"`
	SRPVerifier string          `json:"srp_verifier"`
	KDF         json.RawMessage `json:"kdf"`
	KeyBundle   json.RawMessage `json:"key_bundle,omitempty"`
}

// PasswordChangeResponse is its answer.
type PasswordChangeResponse struct {
	ServerProof     string `json:"server_proof"`
	SessionsRevoked int    `json:"sessions_revoked"`
}

// KeyRecordRequest is the body of POST /auth/v1/keys/record.
type KeyRecordRequest struct {
	KeyRecordSignature string `json:"key_record_signature"`
}

// KeyUpgradeRequest is the body of POST /auth/v1/keys/upgrade: the
// account's key bundle version 2 (the stored version 1 members unchanged)
// and its version 2 key record's signature (docs/crypto.md §3, "Upgrade").
type KeyUpgradeRequest struct {
	KeyBundle          json.RawMessage `json:"key_bundle"`
	KeyRecordSignature string          `json:"key_record_signature"`
}

// Health is the answer of GET /healthz: the process is up.
type Health struct {
	Status string `json:"status"` // always "ok"
}

// Readiness is the answer of GET /readyz: one member per dependency
// (postgres, redis, signing keys), each "ok" or "unavailable"; 200 when all
// are "ok", 503 otherwise.
type Readiness map[string]string

// TokenCreateRequest is the body of POST /auth/v1/tokens: a machine token
// the caller made (docs/crypto.md §13). The token's secret never travels;
// these are its public keys, the key record it signed over them, and the
// caller's anchor (an HMAC only the token can check).
type TokenCreateRequest struct {
	TokenID            string `json:"token_id"` // a version 4 uuid, lower case
	Name               string `json:"name"`     // 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit
	X25519Public       string `json:"x25519_public"`
	Ed25519Public      string `json:"ed25519_public"`
	XWingPublic        string `json:"xwing_public"`
	KeyRecordSignature string `json:"key_record_signature"`
	Anchor             string `json:"anchor"` // base64, 32 bytes
	// LifetimeSeconds is how long the token lives from its creation, at
	// least TokenMinLifetime and at most TokenMaxLifetime; the server
	// computes the expiry by its own clock.
	LifetimeSeconds int64 `json:"lifetime_seconds"`
}

// Bounds of a machine token's lifetime.
const (
	TokenMinLifetime = time.Second
	TokenMaxLifetime = 366 * 24 * time.Hour
)

// TokenInfo is the answer to POST /auth/v1/tokens.
type TokenInfo struct {
	TokenID   string    `json:"token_id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MachineChallengeRequest is the body of POST /auth/v1/machine/challenge.
type MachineChallengeRequest struct {
	TokenID string `json:"token_id"`
}

// MachineChallenge is its answer: a nonce to sign, single use, valid for
// ExpiresIn seconds. Every well-formed token id gets one, whether or not a
// live token has that id.
type MachineChallenge struct {
	Nonce     string `json:"nonce"` // base64url without padding, 32 bytes
	ExpiresIn int    `json:"expires_in"`
}

// MachineLoginRequest is the body of POST /auth/v1/machine/login: the
// token's Ed25519 signature over the login message of docs/crypto.md §13.
type MachineLoginRequest struct {
	TokenID   string `json:"token_id"`
	Nonce     string `json:"nonce"`     // as the challenge gave it
	Signature string `json:"signature"` // base64url without padding, 64 bytes
}

// MachineTokens are the answer to a machine login: an access token and no
// refresh token (the machine logs in again when it expires), and what the
// token needs to trust its creator: the creator's user id and anchor
// (docs/crypto.md §13), which only the token can check.
type MachineTokens struct {
	TokenID     string    `json:"token_id"`
	OwnerID     string    `json:"owner_id"`
	Anchor      string    `json:"anchor"` // base64, 32 bytes
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"` // TokenType
	ExpiresIn   int       `json:"expires_in"` // seconds
	ExpiresAt   time.Time `json:"expires_at"`
}

// String keeps the access token out of logs and error messages.
func (t MachineTokens) String() string {
	return fmt.Sprintf("machine token %s (access token redacted)", t.TokenID)
}

// GoString keeps the access token out of %#v.
func (t MachineTokens) GoString() string { return t.String() }
