// Package jwtcache keeps PostgREST 12.0.2's JWT cache bounded.
//
// PostgREST 12.0.2 caches every token it verified, keyed by the token's
// bytes, until the token's exp; it never purges the cache, and an entry
// costs about 10 kB of its memory (docs/benchmarks.md), so every login and
// refresh would grow it for good. An entry does go when it is looked up
// after its expiry: the lookup drops it, and the token, which no longer
// verifies, is not cached again. The [Evictor] makes that lookup: it
// remembers each access token authsvc issued and, once the token can no
// longer verify (exp plus PostgREST's 30 s of clock skew, plus margin),
// sends it to PostgREST once. The cache then holds only the tokens issued
// within the last access TTL and a minute or two, whatever the uptime.
//
// The tokens are held in memory only, for their lifetime plus the delay,
// and never logged. What a restart of authsvc forgets stays in PostgREST's
// cache (at most what was issued within the last TTL and delay), and a
// second PostgREST on the same database is not reached (docs/auth.md
// "PostgREST's JWT cache").
package jwtcache

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Defaults of an [Evictor].
const (
	// DefaultDelay is how long after exp a token is replayed: PostgREST
	// accepts a token up to 30 s past exp (a replay then would cache it
	// again, already expired), and clocks differ.
	DefaultDelay = time.Minute
	// DefaultMax bounds the tokens waiting (about 1 kB each here). Past it
	// the oldest is dropped, unevicted, and a warning logged: authsvc's
	// rate limits keep issuance far below it.
	DefaultMax = 200_000
)

// Evictor replays expired access tokens to PostgREST; see the package
// documentation. Add is safe for concurrent use; Run replays until its
// context ends.
type Evictor struct {
	// URL is PostgREST's base URL (AUTHSVC_POSTGREST_URL), straight, not
	// through the gateway.
	URL    string
	Client *http.Client  // nil: a client with a 5 s timeout
	Delay  time.Duration // 0: DefaultDelay
	Max    int           // 0: DefaultMax
	Log    *slog.Logger  // nil: discard
	Now    func() time.Time

	mu    sync.Mutex
	queue tokenHeap
	wake  chan struct{} // made on first use; see wakeup
	stats Stats
}

// The Evictor holds access tokens, which are credentials: every way of
// printing or encoding it shows its counts only.

// String shows the counts, never a token.
func (e *Evictor) String() string {
	st := e.Stats()
	return fmt.Sprintf("jwtcache.Evictor{pending: %d, added: %d, evicted: %d, failed: %d, dropped: %d}",
		e.Pending(), st.Added, st.Replayed, st.Failed, st.Dropped)
}

// GoString keeps the tokens out of %#v.
func (e *Evictor) GoString() string { return e.String() }

// Format keeps the tokens out of every fmt verb.
func (e *Evictor) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, e.String()) }

// MarshalJSON keeps the tokens out of JSON.
func (e *Evictor) MarshalJSON() ([]byte, error) { return json.Marshal(e.String()) }

// LogValue keeps the tokens out of slog.
func (e *Evictor) LogValue() slog.Value { return slog.StringValue(e.String()) }

// Stats counts what an Evictor did.
type Stats struct {
	Added, Replayed, Dropped, Failed int
}

// Stats returns the counts so far.
func (e *Evictor) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Pending is how many tokens wait for their replay.
func (e *Evictor) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.queue)
}

type entry struct {
	due   time.Time
	token string
}

// tokenHeap orders entries by due time (tokens are issued with nearly
// increasing exp, but a token dated at a revocation cutoff is later).
type tokenHeap []entry

func (h tokenHeap) Len() int           { return len(h) }
func (h tokenHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h tokenHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *tokenHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *tokenHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = entry{}
	*h = old[:len(old)-1]
	return e
}

func (e *Evictor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Evictor) delay() time.Duration {
	if e.Delay > 0 {
		return e.Delay
	}
	return DefaultDelay
}

func (e *Evictor) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Add schedules token, which expires at exp, for its replay. A nil
// Evictor does nothing, so the signer can call it unconditionally.
func (e *Evictor) Add(token string, exp time.Time) {
	if e == nil {
		return
	}
	max := e.Max
	if max <= 0 {
		max = DefaultMax
	}
	e.mu.Lock()
	if len(e.queue) >= max {
		heap.Pop(&e.queue)
		e.stats.Dropped++
	}
	heap.Push(&e.queue, entry{due: exp.Add(e.delay()), token: token})
	e.stats.Added++
	wake := e.wakeup()
	e.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

// wakeup is the channel Add signals Run on; e.mu must be held.
func (e *Evictor) wakeup() chan struct{} {
	if e.wake == nil {
		e.wake = make(chan struct{}, 1)
	}
	return e.wake
}

// due takes the tokens whose time has come, and returns them with the time
// of the next one and how many tokens were dropped so far.
func (e *Evictor) due() ([]string, time.Time, int, chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var out []string
	for len(e.queue) > 0 && !e.queue[0].due.After(now) {
		out = append(out, heap.Pop(&e.queue).(entry).token)
	}
	var next time.Time
	if len(e.queue) > 0 {
		next = e.queue[0].due
	}
	return out, next, e.stats.Dropped, e.wakeup()
}

// Run replays tokens as they fall due until ctx ends.
func (e *Evictor) Run(ctx context.Context) {
	client := e.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	reported := 0 // tokens dropped that a warning has told of
	for {
		tokens, next, dropped, wake := e.due()
		if dropped > reported {
			e.log().WarnContext(ctx, "JWT cache evictor dropped tokens it could not keep; PostgREST's cache keeps them until it restarts",
				"dropped", dropped-reported)
			reported = dropped
		}
		for _, t := range tokens {
			ok := e.replay(ctx, client, t)
			e.mu.Lock()
			if ok {
				e.stats.Replayed++
			} else {
				e.stats.Failed++
			}
			e.mu.Unlock()
		}
		wait := time.Minute
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(e.now()), 10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(wait):
		}
	}
}

// replay sends one expired token to PostgREST and reports whether
// PostgREST refused it itself, as it should (401 PGRST301: it looked the
// token up, dropped the expired entry, and could not verify it again).
// Any other answer is logged without the token: it means the token still
// verified (PostgREST's clock is behind; the gate then answered), and it
// stays cached.
func (e *Evictor) replay(ctx context.Context, client *http.Client, token string) bool {
	// Any path: PostgREST checks the token before it routes the request.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/", nil)
	if err != nil {
		return false
	}
	// The token is a credential: it goes in this header only, never into
	// a log or an error.
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			e.log().WarnContext(ctx, "JWT cache evictor cannot reach PostgREST", "err", err)
		}
		return false
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	var body struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(data, &body)
	if resp.StatusCode != http.StatusUnauthorized || body.Code != "PGRST301" {
		e.log().WarnContext(ctx, "PostgREST did not refuse an expired access token; is its clock behind?",
			"status", resp.StatusCode, "code", body.Code)
		return false
	}
	return true
}
