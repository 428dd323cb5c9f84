// Package admin is authsvc's operator interface over HTTP, on a listener of
// its own that binds to loopback only and requires the admin credential:
// signing keys (list, rotate, revoke), Prometheus metrics and health.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
)

// Server is the admin API.
type Server struct {
	Rotator *signer.Rotator
	Keys    func(ctx context.Context) ([]store.SigningKey, error)
	Metrics http.Handler
	Ready   func(ctx context.Context) error
	// Token is the admin credential, compared in constant time.
	Token []byte
	Log   *slog.Logger
}

// Handler routes the admin API; everything but /healthz needs the token.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /readyz", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Ready(r.Context()); err != nil {
			writeError(w, r, http.StatusServiceUnavailable, "not_ready", "a dependency is not available")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})))
	mux.Handle("GET /metrics", s.auth(s.Metrics))
	mux.Handle("GET /admin/v1/keys", s.auth(http.HandlerFunc(s.listKeys)))
	mux.Handle("POST /admin/v1/keys/rotate", s.auth(http.HandlerFunc(s.rotate)))
	mux.Handle("POST /admin/v1/keys/{kid}/revoke", s.auth(http.HandlerFunc(s.revoke)))
	return mux
}

// auth demands "Authorization: Bearer <admin token>". The comparison runs
// over hashes of equal length, so neither the token nor its length leaks
// through timing.
func (s *Server) auth(next http.Handler) http.Handler {
	want := sha256.Sum256(s.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || len(s.Token) == 0 || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="zsm-admin"`)
			writeError(w, r, http.StatusUnauthorized, "admin_credential_required", "this endpoint needs the admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// KeyView is a signing key as the admin API shows it: never the private half.
type KeyView struct {
	KID         string     `json:"kid"`
	State       string     `json:"state"`
	Algorithm   string     `json:"algorithm"`
	CreatedAt   time.Time  `json:"created_at"`
	PublishedAt *time.Time `json:"published_at,omitempty"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	RemovedAt   *time.Time `json:"removed_at,omitempty"`
	Revoked     bool       `json:"revoked"`
}

// View converts stored keys.
func View(keys []store.SigningKey) []KeyView {
	out := make([]KeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, KeyView{KID: k.KID, State: k.State, Algorithm: "EdDSA", CreatedAt: k.CreatedAt,
			PublishedAt: k.PublishedAt, ActivatedAt: k.ActivatedAt, RetiredAt: k.RetiredAt, RemovedAt: k.RemovedAt, Revoked: k.Revoked})
	}
	return out
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.Keys(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": View(keys)})
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	res, err := s.Rotator.Rotate(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"retired": res.Retired, "current": res.Current, "next": res.Next})
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if err := s.Rotator.Revoke(r.Context(), r.PathValue("kid")); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"revoked": r.PathValue("kid")})
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, r, http.StatusNotFound, "not_found", "no published key with that kid")
		return
	}
	s.Log.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
	writeError(w, r, http.StatusInternalServerError, "internal_error", "the operation failed; see authsvc's log")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "message": msg, "request_id": r.Header.Get("X-Request-Id")})
}
