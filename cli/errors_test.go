package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{errors.New("x"), ExitError},
		{usageErr("", "bad"), ExitUsage},
		{notLoggedIn("no", ""), ExitNotLoggedIn},
		{fmt.Errorf("w: %w", zsm.ErrSessionExpired), ExitNotLoggedIn},
		{zsm.ErrSessionKey, ExitNotLoggedIn},
		{zsm.ErrLoginFailed, ExitAuth},
		{keys.ErrSecretKey, ExitAuth},
		{fmt.Errorf("secret: %w", zsm.ErrNotFound), ExitNotFound},
		{fmt.Errorf("w: %w", zsm.ErrTampered), ExitIntegrity},
		{fmt.Errorf("w: %w", zsm.ErrRollback), ExitIntegrity},
		{zsm.ErrKDFChange, ExitIntegrity},
		{&url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, ExitUnavailable},
		{zsm.ErrExists, ExitConflict},
		{zsm.ErrConflict, ExitConflict},
		{withHint(0, fmt.Errorf("x: %w", zsm.ErrNotFound), "h"), ExitNotFound},
		{withHint(ExitError, zsm.ErrNotFound, "h"), ExitError},
	} {
		code, msg, _ := classify(c.err)
		if code != c.code || msg == "" {
			t.Errorf("classify(%v) = %d %q, want %d", c.err, code, msg, c.code)
		}
	}
	// authsvc's refusals of the input itself are usage errors; its other
	// 4xx codes are not, and 429 and 5xx mean "try later" whatever the code.
	for _, c := range []struct {
		status int
		code   string
		want   int
	}{
		{400, api.CodeMalformedRequest, ExitUsage},
		{400, api.CodeInvalidRegistration, ExitUsage},
		{400, api.CodeInvalidKeyRecord, ExitError},
		{409, api.CodeIdentityUnavailable, ExitError},
		{400, "invalid_request", ExitError}, // no such code: authsvc never sends it
		{429, api.CodeRateLimited, ExitUnavailable},
		{503, api.CodeServiceUnavailable, ExitUnavailable},
	} {
		e := &authclient.APIError{Status: c.status}
		e.Code, e.Message = c.code, "refused"
		if code, _, _ := classify(fmt.Errorf("signup: %w", e)); code != c.want {
			t.Errorf("authsvc %d %s: exit %d, want %d", c.status, c.code, code, c.want)
		}
	}
	if _, msg, _ := classify(zsm.ErrRollback); msg[:31] != "the server sent data that faile" {
		t.Errorf("integrity message %q", msg)
	}
}
