package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/stack"
)

// benchEvents measures webhook delivery: a receiver on loopback, a webhook
// for secret.created, then (1) a burst of c.events secrets written in bulk
// — events delivered per second by the two replicas' workers — and (2)
// single writes by 8 writers for c.duration. The delay is from the event
// row's created_at (stamped inside the transaction that commits the change)
// to the receiver having the verified request.
func benchEvents(ctx context.Context, st *stack.Stack, c config) error {
	fmt.Printf("\n== events: webhook deliveries (2 replicas, receiver on loopback) ==\n")
	hc := zsm.NewHTTPClient()
	state := zsm.NewMemState()
	identity := fmt.Sprintf("events-%d@example.test", time.Now().UnixNano())
	res, err := zsm.Signup(ctx, hc, st.GatewayURL(), identity, "benchmark password", state)
	if err != nil {
		return err
	}
	sess, err := zsm.Login(ctx, hc, st.GatewayURL(), identity, "benchmark password", res.SecretKey, state)
	if err != nil {
		return err
	}
	cl := zsm.New(sess, state, hc)
	v, err := cl.CreateVault(ctx, "events")
	if err != nil {
		return err
	}

	var (
		mu      sync.Mutex
		secret  string
		seen    = map[string]bool{}
		delays  []time.Duration
		last    time.Time
		dups    atomic.Int64
		invalid atomic.Int64
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		ev, err := zsm.VerifyWebhook(secret, r.Header.Get("X-Zsm-Signature"), body, now)
		if err != nil {
			invalid.Add(1)
			w.WriteHeader(400)
			return
		}
		if seen[ev.ID.String()] {
			dups.Add(1)
		} else {
			seen[ev.ID.String()] = true
			delays = append(delays, now.Sub(ev.CreatedAt))
			last = now
		}
		w.WriteHeader(204)
	}))
	defer rcv.Close()
	_, s, err := cl.AddWebhook(ctx, v, rcv.URL+"/hook", []string{zsm.EventSecretCreated})
	if err != nil {
		return err
	}
	mu.Lock()
	secret = s
	mu.Unlock()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(delays)
	}
	waitFor := func(n int, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for count() < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("only %d of %d events delivered within %v", count(), n, timeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	report := func(what string, from int, elapsed time.Duration) {
		mu.Lock()
		d := slices.Clone(delays[from:])
		mu.Unlock()
		r := result{n: len(d), elapsed: elapsed, latencies: d}
		fmt.Printf("%s: %d events, %.0f events/s delivered; commit → delivery p50 %.1f ms, p99 %.1f ms\n",
			what, r.n, r.rate(), ms(r.pct(0.5)), ms(r.pct(0.99)))
	}

	// (1) A burst.
	items := make([]zsm.NameValue, c.events)
	for i := range items {
		items[i] = zsm.NameValue{Name: fmt.Sprintf("EV_%05d", i), Value: strings.Repeat("e", 32)}
	}
	start := time.Now()
	if _, err := cl.CreateSecrets(ctx, v, items, nil); err != nil {
		return err
	}
	written := time.Since(start)
	if err := waitFor(c.events, 2*time.Minute); err != nil {
		return err
	}
	mu.Lock()
	end := last
	mu.Unlock()
	fmt.Printf("burst: %d secrets written in bulk in %.2f s (500 per transaction)\n", c.events, written.Seconds())
	report("burst, first write to last delivery", 0, end.Sub(start))

	// (2) Steady single writes.
	before := count()
	var seq atomic.Int64
	r := load(ctx, 8, c.duration, 100000, func(int) error {
		_, err := cl.CreateSecret(ctx, v, fmt.Sprintf("ST_%d", seq.Add(1)), "value")
		return err
	})
	if err := waitFor(before+r.n, time.Minute); err != nil {
		return err
	}
	report(fmt.Sprintf("steady, 8 writers (%.0f writes/s)", r.rate()), before, r.elapsed)
	fmt.Printf("repeated deliveries (same event id): %d; signatures that failed to verify: %d\n", dups.Load(), invalid.Load())
	return nil
}
