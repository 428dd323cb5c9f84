package zsm

import "errors"

// Errors a caller branches on. Integrity failures all wrap ErrTampered, so a
// caller can tell "the server sent something it should not have" from
// everything else.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrConflict  = errors.New("changed by someone else meanwhile; try again")
	ErrTampered  = errors.New("integrity check failed: the server sent data this account did not write")
	ErrRollback  = errors.New("the server sent an older revision than this device has already seen")
	ErrKDFChange = errors.New("the server's key-derivation parameters differ from the ones this device pinned for the account")
	// ErrSessionExpired means the session cannot be refreshed any more; log
	// in again.
	ErrSessionExpired = errors.New("the session has ended; log in again")
	// ErrLoginFailed covers a wrong password, a wrong Secret Key and an
	// unknown identity alike.
	ErrLoginFailed = errors.New("login failed: wrong identity, password or Secret Key")
)

// tampered wraps a detail under ErrTampered.
type tampered struct {
	what string
	err  error
}

func (t *tampered) Error() string {
	if t.err != nil {
		return ErrTampered.Error() + ": " + t.what + ": " + t.err.Error()
	}
	return ErrTampered.Error() + ": " + t.what
}

func (t *tampered) Unwrap() []error {
	if t.err != nil {
		return []error{ErrTampered, t.err}
	}
	return []error{ErrTampered}
}

func tamper(what string, err error) error { return &tampered{what: what, err: err} }
