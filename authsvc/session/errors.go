package session

import (
	"errors"

	"zsm.dev/zsm/authsvc/store"
)

// Errors of sessions and of the endpoints that take an access token.
// authsvc/httpapi answers each with one code (its errors.go table).
var (
	// ErrInvalidRefresh is the one answer to a refresh token that cannot be
	// used: unknown, malformed, expired, revoked or reused.
	ErrInvalidRefresh = errors.New("refresh token is not valid")
	// ErrInvalidAccess: the access token is missing, malformed, expired,
	// not signed by a published key, or not ours.
	ErrInvalidAccess = errors.New("access token is not valid")
	// ErrSessionEnded: the token is fine but its session is revoked,
	// expired or idle (or its account is gone).
	ErrSessionEnded = errors.New("the session has ended")
	// ErrNotFound: no live session with that id belongs to the caller.
	ErrNotFound = errors.New("no such session")
	// ErrKeysDiffer: a password change's key bundle does not carry the
	// account's public keys.
	ErrKeysDiffer = errors.New("the key bundle's public keys are not the account's")
)

// fromStore is where storage errors become this package's: the store's
// sentinels map to the errors above, notFound says what store.ErrNotFound
// means for the call at hand (nil: pass it on), and anything else passes
// unchanged (an unreachable database stays what it is, not a bad token: the
// client should retry, not log in again).
func fromStore(err, notFound error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrRefreshInvalid), errors.Is(err, store.ErrRefreshReused):
		return ErrInvalidRefresh
	case errors.Is(err, store.ErrSessionEnded):
		return ErrSessionEnded
	case errors.Is(err, store.ErrKeysDiffer):
		return ErrKeysDiffer
	case notFound != nil && errors.Is(err, store.ErrNotFound):
		return notFound
	}
	return err
}
