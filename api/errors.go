package api

// Error is the body of every error answer of authsvc:
//
//	{"code": "snake_case", "message": "…", "request_id": "…"}
//
// The HTTP status is the class, Code the precise reason a program branches
// on (one of the Code* constants), Message a sentence for people that no
// program should parse, and RequestID the id under which the server logged
// the request.
type Error struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// Error codes authsvc answers with. They are stable: clients branch on them.
const (
	// CodeMalformedRequest: the body is not what the endpoint takes (not
	// one JSON object, an unknown member, a malformed identity, A or proof).
	CodeMalformedRequest = "malformed_request"
	// CodeInvalidRegistration: a sign-up's or password change's
	// registration (identity, SRP salt or verifier, KDF parameters, key
	// bundle) is refused.
	CodeInvalidRegistration = "invalid_registration"
	// CodeInvalidKeyRecord: a key record signature does not prove
	// possession of the published keys.
	CodeInvalidKeyRecord = "invalid_key_record"
	// CodeKeyBundleMismatch: a password change's key bundle does not carry
	// the account's public keys unchanged.
	CodeKeyBundleMismatch = "key_bundle_mismatch"
	// CodeInvalidKeyUpgrade: a key upgrade's bundle is not a version 2
	// bundle.
	CodeInvalidKeyUpgrade = "invalid_key_upgrade"
	// CodeKeyChangeRefused: a key upgrade's bundle is not the stored
	// version 1 bundle with an X-Wing key added (it would change the
	// account's keys).
	CodeKeyChangeRefused = "key_change_refused"
	// CodeKeysChanged: the account's keys were upgraded or re-wrapped by
	// another device meanwhile; log in again.
	CodeKeysChanged = "keys_changed"

	// CodeLoginFailed is the one answer to a failed login: wrong password,
	// unknown identity, expired or used handshake.
	CodeLoginFailed = "login_failed"
	// CodeInvalidRefreshToken: the refresh token is unknown, spent,
	// expired or revoked.
	CodeInvalidRefreshToken = "invalid_refresh_token"
	// CodeInvalidToken: no bearer access token, or one that is malformed,
	// expired or not ours.
	CodeInvalidToken = "invalid_token"
	// CodeSessionRevoked: the access token is good but its session has
	// ended (revoked, past its absolute or idle lifetime). PostgREST's
	// gate answers with the same code.
	CodeSessionRevoked = "session_revoked"
	// CodeProofFailed: the proof of the current password for a password
	// change is wrong, or its handshake expired, was used, or belongs to
	// another account.
	CodeProofFailed = "proof_failed"

	// CodeNotFound: no such endpoint, or no such live session of the caller.
	CodeNotFound = "not_found"
	// CodeIdentityUnavailable: the identity cannot be registered.
	CodeIdentityUnavailable = "identity_unavailable"
	// CodePublicKeyInUse: another account published one of these public keys.
	CodePublicKeyInUse = "public_key_in_use"
	// CodeNoPublicKeys: the account published no public keys, so it has no
	// key record to publish.
	CodeNoPublicKeys = "no_public_keys"

	// CodeRateLimited: too many requests or attempts; see Retry-After.
	CodeRateLimited = "rate_limited"
	// CodeRequestTooLarge: the body is over the limit.
	CodeRequestTooLarge = "request_too_large"
	// CodeMethodNotAllowed: the endpoint does not take that method.
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeServiceUnavailable: Postgres or Redis cannot be reached, or the
	// signing keys are not loaded yet; login fails closed.
	CodeServiceUnavailable = "service_unavailable"
	// CodeInternalError: a fault on the server; the request id finds it in
	// the logs.
	CodeInternalError = "internal_error"
	// CodeHTTPError stands for any other HTTP-level refusal; clients also
	// use it for an error answer without a readable body.
	CodeHTTPError = "http_error"
)

// CodeTokenExpired is never sent by authsvc: the database's gate answers
// with it, through PostgREST, for an access token whose exp has passed.
// The gate also answers CodeInvalidToken and CodeSessionRevoked.
const CodeTokenExpired = "token_expired"

// Codes lists every code authsvc may send.
var Codes = []string{
	CodeMalformedRequest, CodeInvalidRegistration, CodeInvalidKeyRecord, CodeKeyBundleMismatch,
	CodeLoginFailed, CodeInvalidRefreshToken, CodeInvalidToken, CodeSessionRevoked, CodeProofFailed,
	CodeNotFound, CodeIdentityUnavailable, CodePublicKeyInUse, CodeNoPublicKeys,
	CodeInvalidKeyUpgrade, CodeKeyChangeRefused, CodeKeysChanged,
	CodeRateLimited, CodeRequestTooLarge, CodeMethodNotAllowed, CodeServiceUnavailable, CodeInternalError, CodeHTTPError,
}
