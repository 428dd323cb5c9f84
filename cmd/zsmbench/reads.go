package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/srpgroup"
	"zsm.dev/zsm/stack"
)

// readPath is one way of reading a user's page of rows.
type readPath struct {
	name, desc string
	url        func(w int) string
	token      func(w int) string
}

// readSample is one sub-phase of one round.
type readSample struct {
	res result
	cpu cpuPer
}

// benchReads compares authenticated reads of one's own rows (JWT + gate +
// RLS, through the gateway) with the baseline: anonymous reads of the same
// rows straight at PostgREST, from a copy of the table without RLS.
//
// Single phases of several seconds move by ±10 % on a shared machine, so
// the comparison runs in c.rounds rounds, each measuring every path for
// c.round, the order reversed every other round so that drifting load hits
// both alike; it prints each round's ratio, the median and the spread. It
// also prints the CPU time each component spent per request (median over
// the rounds), which does not depend on what else the machine runs.
func benchReads(ctx context.Context, st *stack.Stack, c config) error {
	fmt.Printf("== reads of 100-row pages: %d users x %d rows (and %d rows of others); %d rounds of %s per path ==\n", c.users, c.rows, c.otherRows, c.rounds, c.round)
	ac := authclient.New(st.GatewayURL())
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	kdf := api.KDF{Alg: "argon2id", Salt: base64.StdEncoding.EncodeToString(secret[:16]), MemoryKiB: 65536, Iterations: 3, Parallelism: 4}
	tokens := make([]string, c.users)
	owners := make([]string, c.users)
	for i := range tokens {
		identity, err := srpgroup.ParseIdentity(fmt.Sprintf("reader-%d-%d@example.test", i, time.Now().UnixNano()))
		if err != nil {
			return err
		}
		if _, err := ac.Signup(ctx, identity, secret, kdf); err != nil {
			return err
		}
		s, err := ac.LoginWithSecret(ctx, identity, secret)
		if err != nil {
			return err
		}
		tokens[i], owners[i] = s.AccessToken, s.UserID
	}

	conn, err := pgx.Connect(ctx, st.AdminDSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// The same rows twice: in api.vaults (RLS) and in a copy without RLS
	// that anon may read, which exists only in this stack.
	meta := strings.Repeat("x", 100)
	if _, err := conn.Exec(ctx, `
		INSERT INTO api.vaults (owner_id, meta)
		SELECT o::uuid, $2 FROM unnest($1::text[]) o, generate_series(1, $3)`, owners, meta, c.rows); err != nil {
		return err
	}
	// Rows of other accounts, never read: a table of realistic size, on
	// which the planner's generic plan (PostgREST sends LIMIT $1) reads
	// the caller's rows through the indexes instead of scanning the table
	// (docs/benchmarks.md). In both tables alike.
	if c.otherRows > 0 {
		if _, err := conn.Exec(ctx, `
			INSERT INTO api.vaults (owner_id, meta)
			SELECT gen_random_uuid(), $1 FROM generate_series(1, $2)`, meta, c.otherRows); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, `
		DROP TABLE IF EXISTS api.bench_open;
		CREATE TABLE api.bench_open AS SELECT * FROM api.vaults;
		CREATE INDEX ON api.bench_open (owner_id);
		GRANT SELECT ON api.bench_open TO anon;
		NOTIFY pgrst, 'reload schema';`); err != nil {
		return err
	}
	// Both tables compact (no dead rows left by earlier phases or runs) and
	// analysed, so that the two paths read the same pages.
	for _, table := range []string{"api.vaults", "api.bench_open"} {
		if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+table); err != nil {
			return err
		}
	}
	time.Sleep(time.Second) // PostgREST reloads its schema cache

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: c.conns, MaxConnsPerHost: c.conns}}
	get := func(url, token string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK || n < 1000 {
			return fmt.Errorf("GET %s: %d (%d bytes)", url, resp.StatusCode, n)
		}
		return nil
	}
	const cols = "?select=id,owner_id,meta,created_at,updated_at"
	anon := func(int) string { return "" }
	user := func(w int) string { return tokens[w%len(tokens)] }
	paths := []readPath{
		{"baseline", "anon, no RLS, straight at PostgREST",
			func(w int) string {
				return st.PostgrestURL() + "/bench_open" + cols + "&owner_id=eq." + owners[w%len(owners)]
			}, anon},
		{"authenticated", "JWT + gate + RLS through the gateway",
			func(int) string { return st.GatewayURL() + "/rest/vaults" + cols }, user},
	}
	if c.breakdown {
		paths = append(paths,
			readPath{"direct", "JWT + gate + RLS straight at PostgREST",
				func(int) string { return st.PostgrestURL() + "/vaults" + cols }, user},
			readPath{"proxied", "anon, no RLS, through the gateway",
				func(w int) string {
					return st.GatewayURL() + "/rest/bench_open" + cols + "&owner_id=eq." + owners[w%len(owners)]
				}, anon})
	}
	run := func(p readPath, d time.Duration) result {
		return load(ctx, c.conns, d, 1_000_000, func(w int) error { return get(p.url(w), p.token(w)) })
	}
	for _, p := range paths { // warm-up: connections, plans, caches
		run(p, time.Second)
	}

	meter := newCPUMeter(st)
	samples := make([][]readSample, len(paths))
	for r := 0; r < c.rounds; r++ {
		order := make([]int, len(paths))
		for i := range order {
			order[i] = i
		}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			before := meter.sample()
			res := run(paths[i], c.round)
			samples[i] = append(samples[i], readSample{res, perRequest(before, meter.sample(), res.n+res.failed)})
		}
		base := samples[0][r].res.rate()
		fmt.Printf("round %d:", r+1)
		for i, p := range paths {
			rate := samples[i][r].res.rate()
			if i == 0 {
				fmt.Printf("  %s %6.1f/s", p.name, rate)
			} else {
				fmt.Printf("  %s %6.1f/s (%.2f)", p.name, rate, rate/base)
			}
		}
		fmt.Println()
	}

	fmt.Println()
	for i, p := range paths {
		var rates []float64
		failed := 0
		for _, s := range samples[i] {
			rates = append(rates, s.res.rate())
			failed += s.res.failed
		}
		var all result
		for _, s := range samples[i] {
			all.latencies = append(all.latencies, s.res.latencies...)
		}
		fmt.Printf("%-14s %-40s median %6.1f/s  p50 %6.2f ms  p99 %6.2f ms  %d failed\n",
			p.name, p.desc, median(rates), ms(all.pct(0.5)), ms(all.pct(0.99)), failed)
	}
	for i, p := range paths[1:] {
		var ratios []float64
		for r := range c.rounds {
			ratios = append(ratios, samples[i+1][r].res.rate()/samples[0][r].res.rate())
		}
		target := ""
		if p.name == "authenticated" {
			target = " (target >= 0.80)"
		}
		fmt.Printf("ratio %s / baseline: median %.2f, spread %.2f–%.2f over %d rounds%s\n",
			p.name, median(ratios), slices.Min(ratios), slices.Max(ratios), len(ratios), target)
	}
	fmt.Println("CPU per request, median over the rounds (µs; server = all but the load generator):")
	med := make([]cpuPer, len(paths))
	for i, p := range paths {
		med[i] = cpuPer{}
		for _, comp := range components {
			var v []float64
			for _, s := range samples[i] {
				v = append(v, float64(s.cpu[comp]))
			}
			med[i][comp] = time.Duration(median(v))
		}
		fmt.Printf("  %-14s %s\n", p.name, med[i])
	}
	fmt.Printf("  CPU ratio baseline / authenticated: %.2f with the load generator, %.2f server only\n",
		float64(med[0].total())/float64(med[1].total()), float64(med[0].server())/float64(med[1].server()))

	// The same authenticated reads while the signing key rotates every two
	// seconds; clients refresh now and then, so tokens of several keys are in
	// use. Not one request may fail.
	rotStop := make(chan struct{})
	rotDone := make(chan int)
	go func() {
		n := 0
		defer func() { rotDone <- n }()
		for {
			select {
			case <-rotStop:
				return
			case <-time.After(2 * time.Second):
			}
			cmd := exec.CommandContext(ctx, st.AuthsvcBinary(), "keys", "rotate")
			cmd.Env = st.AuthsvcEnv(1)
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "  rotation failed: %v\n%s", err, out)
				return
			}
			n++
		}
	}()
	during := run(paths[1], c.duration)
	close(rotStop)
	rotations := <-rotDone
	fmt.Printf("JWT + RLS through the gateway, during %d key rotations: %s  (%.2f of the authenticated median)\n",
		rotations, during, during.rate()/median(rates(samples[1])))
	_, err = conn.Exec(ctx, `DROP TABLE api.bench_open; DELETE FROM api.vaults; NOTIFY pgrst, 'reload schema';`)
	return err
}

func rates(s []readSample) []float64 {
	var out []float64
	for _, x := range s {
		out = append(out, x.res.rate())
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
