package zsm

// Small additions the zsm command-line client needs (cli/). They expose
// what the SDK already does internally; nothing here changes its checks.

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/authclient"
)

// Refresh rotates the session's tokens now, whatever their expiry. The CLI
// calls it under a lock shared by its processes, so that two commands never
// spend the same refresh token (a second use revokes the session). OnRefresh
// is called as after any refresh.
func (c *Client) Refresh(ctx context.Context) error {
	return c.refresh(ctx, c.Session().AccessToken)
}

// Ping checks that the session is still accepted with one cheap
// authenticated request (refreshing the tokens if they expired).
func (c *Client) Ping(ctx context.Context) error {
	var rows []struct {
		ID uuid.UUID `json:"id"`
	}
	return c.rest(ctx, "GET", "/vaults?select=id&limit=1", nil, &rows)
}

// HTTPStatus returns the HTTP status of an error answer from the server
// (authsvc or PostgREST), so a caller can tell "unavailable" (5xx) or
// "rate-limited" (429) from other refusals.
func HTTPStatus(err error) (int, bool) {
	var re *restError
	if errors.As(err, &re) {
		return re.Status, true
	}
	var ae *authclient.APIError
	if errors.As(err, &ae) {
		return ae.Status, true
	}
	return 0, false
}
