package jwtcache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder stands where PostgREST would and counts the tokens it is sent;
// it answers 401 (PostgREST's answer to an expired token) unless told
// otherwise. What PostgREST itself does with them is tested against the
// real one in tests/replicas and measured in zsmbench's jwtcache phase.
type recorder struct {
	mu     sync.Mutex
	seen   map[string]int
	status int
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")]++
	w.WriteHeader(r.status)
	if r.status == http.StatusUnauthorized {
		_, _ = w.Write([]byte(`{"code":"PGRST301","message":"JWT expired"}`))
	} else {
		_, _ = w.Write([]byte(`{"code":"session_revoked"}`))
	}
}

func (r *recorder) count(tok string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[tok]
}

func TestEvictorReplaysEachTokenOnceWhenDue(t *testing.T) {
	rec := &recorder{seen: map[string]int{}, status: http.StatusUnauthorized}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	var logs bytes.Buffer
	e := &Evictor{URL: srv.URL, Delay: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()

	now := time.Now()
	expired := []string{"token-a", "token-b", "token-c"}
	for _, tok := range expired {
		e.Add(tok, now.Add(-time.Second))
	}
	e.Add("token-live", now.Add(time.Hour))
	deadline := time.Now().Add(5 * time.Second)
	for e.Stats().Replayed < len(expired) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a wrong second replay
	cancel()
	<-done
	for _, tok := range expired {
		if n := rec.count(tok); n != 1 {
			t.Errorf("%s replayed %d times, want once", tok, n)
		}
	}
	if n := rec.count("token-live"); n != 0 {
		t.Errorf("a token an hour from its expiry was replayed %d times", n)
	}
	if st := e.Stats(); st != (Stats{Added: 4, Replayed: 3}) || e.Pending() != 1 {
		t.Errorf("stats %+v, pending %d; want 4 added, 3 replayed, 1 pending", st, e.Pending())
	}
}

// A token that PostgREST still takes (its clock behind; the gate then
// answers, here with 402 as a stand-in for anything but PostgREST's own
// 401 PGRST301) is counted as failed and logged, without the token.
func TestEvictorReportsATokenPostgRESTStillTakes(t *testing.T) {
	rec := &recorder{seen: map[string]int{}, status: http.StatusUnauthorized + 1}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	var logs bytes.Buffer
	e := &Evictor{URL: srv.URL, Delay: time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	secret := "eyJhbGciOiJFZERTQSJ9.secret-claims.secret-signature"
	e.Add(secret, time.Now().Add(-time.Minute))
	deadline := time.Now().Add(5 * time.Second)
	for e.Stats().Failed == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if st := e.Stats(); st.Failed != 1 || st.Replayed != 0 {
		t.Fatalf("stats %+v, want one failed replay", st)
	}
	if !strings.Contains(logs.String(), "did not refuse an expired access token") {
		t.Errorf("no warning logged: %q", logs.String())
	}
	if strings.Contains(logs.String(), "secret") {
		t.Errorf("the token reached the log: %q", logs.String())
	}
}

// Past Max, the entry due first is dropped and counted.
func TestEvictorBound(t *testing.T) {
	e := &Evictor{URL: "http://127.0.0.1:1", Max: 3}
	now := time.Now()
	for i := range 5 {
		e.Add(fmt.Sprintf("t%d", i), now.Add(time.Duration(i)*time.Minute))
	}
	if e.Pending() != 3 || e.Stats().Dropped != 2 {
		t.Fatalf("pending %d, dropped %d; want 3 and 2", e.Pending(), e.Stats().Dropped)
	}
	toks, _, dropped, _ := (&Evictor{}).due()
	if toks != nil || dropped != 0 {
		t.Fatalf("an empty evictor had due tokens %v (dropped %d)", toks, dropped)
	}
	e.Now = func() time.Time { return now.Add(time.Hour) }
	toks, _, dropped, _ = e.due()
	if strings.Join(toks, ",") != "t2,t3,t4" || dropped != 2 {
		t.Fatalf("due %v (dropped %d), want t2,t3,t4 in order and 2 dropped", toks, dropped)
	}
	var nilEvictor *Evictor
	nilEvictor.Add("ignored", now) // must not panic
}

// The evictor holds tokens: printing, encoding or logging it shows none.
func TestEvictorRedacts(t *testing.T) {
	secret := "eyJhbGciOiJFZERTQSJ9.claims-of-a-live-token.signature-of-a-live-token"
	e := &Evictor{URL: "http://127.0.0.1:1"}
	e.Add(secret, time.Now().Add(time.Hour))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("evictor", "e", e)
	j, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprint(e), fmt.Sprintf("%v %+v %#v %s %q %x", e, e, e, e, e, e), string(j), logs.String(),
	} {
		if strings.Contains(out, "live-token") {
			t.Errorf("a token was printed: %s", out)
		}
	}
	if !strings.Contains(fmt.Sprint(e), "pending: 1") {
		t.Errorf("String = %q, want the counts", fmt.Sprint(e))
	}
}
