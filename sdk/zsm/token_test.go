package zsm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"zsm.dev/zsm/api"
)

// fakeServer plays PostgREST (under /rest) and authsvc's refresh and
// session list: each answers with the next of its scripted statuses and
// codes, and every refresh hands out a new access token.
type fakeServer struct {
	mu        sync.Mutex
	rest      []answerSpec // what /rest answers, in turn (then 200)
	sessions  []answerSpec // what GET /auth/v1/sessions answers, in turn (then 200)
	refreshes int
	tokens    []string // the access token of every /rest and sessions request
}

type answerSpec struct {
	status int
	code   string
}

func (f *fakeServer) next(q *[]answerSpec) answerSpec {
	if len(*q) == 0 {
		return answerSpec{status: http.StatusOK}
	}
	a := (*q)[0]
	*q = (*q)[1:]
	return a
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	var a answerSpec
	switch {
	case r.URL.Path == api.PathTokenRefresh:
		f.refreshes++
		_ = json.NewEncoder(w).Encode(api.Tokens{AccessToken: "access-" + string(rune('A'+f.refreshes)),
			RefreshToken: "refresh", TokenType: api.TokenType, ExpiresAt: time.Now().Add(15 * time.Minute)})
		return
	case strings.HasPrefix(r.URL.Path, "/rest/"):
		f.tokens = append(f.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		a = f.next(&f.rest)
		if a.status == http.StatusOK {
			_, _ = w.Write([]byte(`[]`))
			return
		}
	case r.URL.Path == api.PathSessions:
		f.tokens = append(f.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		a = f.next(&f.sessions)
		if a.status == http.StatusOK {
			_ = json.NewEncoder(w).Encode(api.SessionsResponse{Sessions: []api.SessionInfo{}})
			return
		}
	default:
		a = answerSpec{http.StatusNotFound, api.CodeNotFound}
	}
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(api.Error{Code: a.code, Message: "scripted"})
}

func fakeClient(t *testing.T, f *fakeServer, expiresIn time.Duration) *Client {
	t.Helper()
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return New(&Session{Server: ts.URL, AccessToken: "access-A", RefreshToken: "refresh",
		AccessExpiry: time.Now().Add(expiresIn)}, NewMemState(), ts.Client())
}

// The SDK has one refresh-and-retry path (withToken) for PostgREST and for
// authsvc; each says which refusals a refresh may cure.
func TestRefreshAndRetry(t *testing.T) {
	ctx := context.Background()
	type call func(c *Client) error
	rest := func(c *Client) error { return c.Ping(ctx) }
	sessions := func(c *Client) error { _, err := c.Sessions(ctx); return err }
	cases := []struct {
		name           string
		rest, sessions []answerSpec
		expiresIn      time.Duration
		do             call
		wantErr        error // nil: success (or the refusal, when wantStatus is set)
		wantStatus     int   // the HTTP status of a refusal passed on as it is
		wantRefreshes  int
		wantTokens     []string
	}{
		{"rest: fresh token", nil, nil, time.Hour, rest, nil, 0, 0, []string{"access-A"}},
		{"rest: about to expire", nil, nil, 10 * time.Second, rest, nil, 0, 1, []string{"access-B"}},
		{"rest: refused once", []answerSpec{{401, "PGRST301"}}, nil, time.Hour, rest, nil, 0, 1, []string{"access-A", "access-B"}},
		{"rest: refused twice", []answerSpec{{401, "PGRST301"}, {401, "PGRST301"}}, nil, time.Hour, rest, ErrSessionExpired, 0, 1, []string{"access-A", "access-B"}},
		{"rest: session ended", []answerSpec{{401, api.CodeSessionRevoked}}, nil, time.Hour, rest, ErrSessionExpired, 0, 0, []string{"access-A"}},
		{"rest: other refusal", []answerSpec{{403, "42501"}}, nil, time.Hour, rest, nil, 403, 0, []string{"access-A"}},
		{"authsvc: invalid token once", nil, []answerSpec{{401, api.CodeInvalidToken}}, time.Hour, sessions, nil, 0, 1, []string{"access-A", "access-B"}},
		{"authsvc: session ended", nil, []answerSpec{{401, api.CodeSessionRevoked}}, time.Hour, sessions, ErrSessionExpired, 0, 0, []string{"access-A"}},
		{"authsvc: about to expire", nil, nil, time.Second, sessions, nil, 0, 1, []string{"access-B"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServer{rest: tc.rest, sessions: tc.sessions}
			c := fakeClient(t, f, tc.expiresIn)
			err := tc.do(c)
			switch {
			case tc.wantStatus != 0:
				if status, ok := HTTPStatus(err); !ok || status != tc.wantStatus {
					t.Fatalf("err %v, want the %d as it is", err, tc.wantStatus)
				}
			case tc.wantErr == nil && err != nil, tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if f.refreshes != tc.wantRefreshes {
				t.Errorf("%d refreshes, want %d", f.refreshes, tc.wantRefreshes)
			}
			if strings.Join(f.tokens, ",") != strings.Join(tc.wantTokens, ",") {
				t.Errorf("requests carried %v, want %v", f.tokens, tc.wantTokens)
			}
		})
	}
}
