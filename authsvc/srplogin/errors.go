package srplogin

import (
	"errors"
	"fmt"

	"zsm.dev/zsm/authsvc/store"
)

// Errors of sign-up and login. authsvc/httpapi answers each with one code
// (its errors.go table); nothing else is needed to tell them apart.
var (
	// ErrLoginFailed is the one answer to every failed verify: wrong
	// password, unknown identity, expired or replayed handshake.
	ErrLoginFailed = errors.New("login failed")
	// ErrProofFailed is a failed re-proof of the password by a signed-in
	// user (VerifyFor); it wraps ErrLoginFailed.
	ErrProofFailed = fmt.Errorf("%w", ErrLoginFailed)
	// ErrBadRequest: a malformed identity, A, handshake id or proof.
	ErrBadRequest = errors.New("malformed login request")
	// ErrBadRegistration: a registration (sign-up, or the new password of
	// a password change) is refused. It wraps ErrBadRequest.
	ErrBadRegistration = fmt.Errorf("%w", ErrBadRequest)
	// ErrTaken: the identity is registered already.
	ErrTaken = errors.New("identity cannot be registered")
	// ErrBadKeyRecord means a sign-up that publishes public keys did not
	// prove it holds their private halves (a missing or wrong key record
	// signature, or no user id for the record to bind), or a late key
	// record does not verify.
	ErrBadKeyRecord = errors.New("the key record does not prove possession of the published keys")
	// ErrKeysTaken means the published public keys belong to another account.
	ErrKeysTaken = errors.New("these public keys belong to another account")
	// ErrNoPublicKeys: the account published no public keys, so it has no
	// key record to publish.
	ErrNoPublicKeys = errors.New("the account has published no public keys")
	// ErrBadUpgrade: a key upgrade's bundle is not a version 2 bundle. It
	// wraps ErrBadRequest.
	ErrBadUpgrade = fmt.Errorf("%w: not a version 2 key bundle", ErrBadRequest)
	// ErrKeyChangeRefused: a key upgrade's bundle is not the stored
	// version 1 bundle with an X-Wing key added.
	ErrKeyChangeRefused = errors.New("a key upgrade keeps the account's stored keys; it only adds the X-Wing key")
	// ErrKeysChanged: the stored bundle changed between reading and
	// writing (another device upgraded or changed the password).
	ErrKeysChanged = errors.New("the account's keys changed meanwhile (upgraded or re-wrapped on another device); log in again")
)

// fromStore is where storage errors become this package's: the store's
// sentinels map to the errors above, notFound says what store.ErrNotFound
// means for the call at hand (nil: pass it on), and anything else passes
// unchanged (an unreachable database stays what it is).
func fromStore(err, notFound error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrIdentityTaken):
		return ErrTaken
	case errors.Is(err, store.ErrKeysTaken):
		return ErrKeysTaken
	case errors.Is(err, store.ErrBundleChanged):
		return ErrKeysChanged
	case notFound != nil && errors.Is(err, store.ErrNotFound):
		return notFound
	}
	return err
}
