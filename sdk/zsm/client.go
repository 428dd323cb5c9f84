// Package zsm is the Go SDK of zsm: it signs up and logs in, and keeps
// vaults and secrets on a zsm server that never sees them in the clear.
//
// Every secret is encrypted here before it is sent (docs/crypto.md), and
// everything the server sends back is checked before it is believed: the
// envelope's associated data binds each ciphertext to its vault, object and
// revision; vault keys are used only under a grant signed by a key this
// account trusts; and revisions may never go backwards (State).
package zsm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/trust"
)

// Client works on behalf of one logged-in session.
type Client struct {
	http  *http.Client
	state State

	mu       sync.Mutex
	sess     *Session
	pinCache *trust.PinSet // the pin set as last fetched or written by this Client

	// OnRefresh, if set, is called after the tokens were rotated, so the
	// caller can store the new session.
	OnRefresh func(*Session)
	// Now is the clock (tests replace it).
	Now func() time.Time
}

// New returns a Client for sess.
func New(sess *Session, state State, hc *http.Client) *Client {
	if hc == nil {
		hc = NewHTTPClient()
	}
	return &Client{http: hc, state: state, sess: sess, Now: time.Now}
}

// Session returns the current session (tokens change on refresh).
func (c *Client) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// Logout ends the session on the server.
func (c *Client) Logout(ctx context.Context) error {
	s := c.Session()
	ac := authclient.New(s.Server)
	ac.HTTP = c.http
	if err := ac.Logout(ctx, s.RefreshToken); err != nil {
		return apiError(err)
	}
	return nil
}

// refresh rotates the tokens. Concurrent callers share one refresh, since a
// refresh token works once and a second use would revoke the session.
func (c *Client) refresh(ctx context.Context, stale string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess.AccessToken != stale {
		return nil // someone else refreshed meanwhile
	}
	ac := authclient.New(c.sess.Server)
	ac.HTTP = c.http
	t, err := ac.Refresh(ctx, c.sess.RefreshToken)
	if err != nil {
		return apiError(err)
	}
	ns := *c.sess
	ns.AccessToken, ns.AccessExpiry, ns.RefreshToken, ns.SessionID = t.AccessToken, t.ExpiresAt, t.RefreshToken, t.SessionID
	c.sess = &ns
	if c.OnRefresh != nil {
		c.OnRefresh(&ns)
	}
	return nil
}

// restError is an error answer from PostgREST.
type restError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *restError) Error() string {
	return fmt.Sprintf("server refused the request (HTTP %d, %s): %s", e.Status, e.Code, e.Message)
}

// refreshMargin is how long before its expiry an access token is refreshed
// rather than sent.
const refreshMargin = 30 * time.Second

// withToken is the one refresh-and-retry path of the SDK: it runs call with
// an access token that is not about to expire (refreshing it first if it
// is), and when the server refuses the token in a way stale says may be
// cured by a refresh, refreshes once and runs call again. Whatever the
// second try gives is the answer.
func (c *Client) withToken(ctx context.Context, stale func(error) bool, call func(s *Session) error) error {
	for attempt := 0; ; attempt++ {
		s := c.Session()
		if c.Now().Add(refreshMargin).After(s.AccessExpiry) {
			if err := c.refresh(ctx, s.AccessToken); err != nil {
				return err
			}
			s = c.Session()
		}
		err := call(s)
		if attempt == 0 && err != nil && stale(err) {
			if err := c.refresh(ctx, s.AccessToken); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

// rest sends a request to PostgREST (under /rest) with the access token
// (withToken). A 401 the database's gate gives for an ended session is
// ErrSessionExpired at once; any other 401 is worth one refresh, after
// which a 401 is ErrSessionExpired too.
func (c *Client) rest(ctx context.Context, method, path string, body any, out any, hdr ...string) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	stale := func(err error) bool {
		var e *restError
		return errors.As(err, &e) && e.Status == http.StatusUnauthorized && e.Code != api.CodeSessionRevoked
	}
	err := c.withToken(ctx, stale, func(s *Session) error {
		req, err := http.NewRequestWithContext(ctx, method, s.Server+"/rest"+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+s.AccessToken)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return fmt.Errorf("cannot reach the zsm server at %s: %w", s.Server, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode >= 300 {
			e := &restError{Status: resp.StatusCode}
			_ = json.Unmarshal(data, e)
			return e
		}
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return tamper("malformed answer from the server", err)
			}
		}
		return nil
	})
	if isRest(err, http.StatusUnauthorized) {
		return ErrSessionExpired
	}
	return err
}

func isRest(err error, status int) bool {
	var e *restError
	return errors.As(err, &e) && e.Status == status
}
