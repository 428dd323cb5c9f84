package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
)

// Exit codes (docs/cli.md). `zsm run` exits with its child's code instead.
const (
	ExitOK          = 0
	ExitError       = 1 // anything not below
	ExitUsage       = 2 // bad arguments or flags
	ExitNotLoggedIn = 3 // no session, a locked one, or one the server ended
	ExitAuth        = 4 // wrong password or Secret Key
	ExitNotFound    = 5 // no such vault, secret or revision
	ExitIntegrity   = 6 // the server sent data that failed verification
	ExitUnavailable = 7 // server unreachable, unavailable or rate-limiting
	ExitConflict    = 8 // already exists, or changed meanwhile
	ExitForbidden   = 9 // not allowed for your role in the vault
)

// cliError is an error with the exit code and hint the CLI shows.
type cliError struct {
	code int
	msg  string
	hint string
	err  error
}

func (e *cliError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return e.err.Error()
}

func (e *cliError) Unwrap() error { return e.err }

func usageErr(hint, format string, a ...any) error {
	return &cliError{code: ExitUsage, msg: fmt.Sprintf(format, a...), hint: hint}
}

func withHint(code int, err error, hint string) error {
	return &cliError{code: code, err: err, hint: hint}
}

func notLoggedIn(msg, hint string) error {
	return &cliError{code: ExitNotLoggedIn, msg: msg, hint: hint}
}

// classify returns the exit code, the one-line message and a hint for err.
func classify(err error) (code int, msg, hint string) {
	var ce *cliError
	if errors.As(err, &ce) {
		if ce.code == 0 && ce.err != nil {
			code, msg, hint = classify(ce.err)
			if ce.msg != "" {
				msg = ce.msg
			}
			if ce.hint != "" {
				hint = ce.hint
			}
			return code, msg, hint
		}
		return ce.code, ce.Error(), ce.hint
	}
	msg = err.Error()
	switch {
	case errors.Is(err, zsm.ErrKeyChanged):
		return ExitIntegrity, msg, "compare safety numbers with them again (`zsm verify IDENTITY`); only if they match, confirm with `zsm verify IDENTITY --confirm`"
	case errors.Is(err, zsm.ErrTampered), errors.Is(err, zsm.ErrRollback), errors.Is(err, zsm.ErrKDFChange):
		return ExitIntegrity, "the server sent data that failed verification; nothing was trusted: " + msg,
			"this may be an attack or a server fault; do not retry blindly, and tell the server's operator"
	case errors.Is(err, zsm.ErrLoginFailed):
		return ExitAuth, msg, "check the password and the Secret Key (ZSM1-…, in your emergency kit); both must match the account"
	case errors.Is(err, keys.ErrSecretKey):
		return ExitAuth, "that is not a Secret Key", "a Secret Key looks like ZSM1-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XX (see your emergency kit)"
	case errors.Is(err, zsm.ErrSessionExpired), errors.Is(err, zsm.ErrSessionKey):
		return ExitNotLoggedIn, "the session has ended", "run `zsm login`"
	case errors.Is(err, zsm.ErrNotFound):
		return ExitNotFound, msg, ""
	case errors.Is(err, zsm.ErrExists), errors.Is(err, zsm.ErrConflict):
		return ExitConflict, msg, ""
	case errors.Is(err, zsm.ErrForbidden):
		return ExitForbidden, msg, roleHint(err)
	case errors.Is(err, zsm.ErrNotVerified):
		return ExitError, msg, "compare safety numbers (`zsm verify IDENTITY`, then `--confirm`), or share with --trust-on-first-use"
	case errors.Is(err, context.Canceled):
		return ExitError, "interrupted", ""
	}
	if status, ok := zsm.HTTPStatus(err); ok {
		switch {
		case status == 429:
			return ExitUnavailable, "the server is rate-limiting requests: " + msg, "wait a minute and try again"
		case status >= 500:
			return ExitUnavailable, "the server is unavailable: " + msg, "try again later, or check `zsm status`"
		}
		// authsvc refused what it was sent as malformed or as a registration
		// it does not take: the input, not the server, is at fault.
		var ae *authclient.APIError
		if errors.As(err, &ae) && (ae.Code == api.CodeMalformedRequest || ae.Code == api.CodeInvalidRegistration) {
			return ExitUsage, msg, ""
		}
	}
	if unreachable(err) {
		return ExitUnavailable, msg, "is the server running? Check --server / ZSM_SERVER, or `zsm status`"
	}
	return ExitError, msg, ""
}

func unreachable(err error) bool {
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &oe) || errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded)
}
