package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// Paths of authsvc's endpoints, as the gateway exposes them.
const (
	PathSignup         = "/auth/v1/signup"
	PathLoginParams    = "/auth/v1/login/params"
	PathLoginInit      = "/auth/v1/login/init"
	PathLoginVerify    = "/auth/v1/login/verify"
	PathTokenRefresh   = "/auth/v1/token/refresh"
	PathLogout         = "/auth/v1/logout"
	PathSessions       = "/auth/v1/sessions" // GET; DELETE PathSessions + "/{id}"
	PathPasswordInit   = "/auth/v1/password/init"
	PathPasswordChange = "/auth/v1/password/change"
	PathKeyRecord      = "/auth/v1/keys/record"
	PathKeyUpgrade     = "/auth/v1/keys/upgrade"
	PathOpenAPI        = "/auth/v1/openapi.yaml"
	PathJWKS           = "/.well-known/jwks.json"
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
