package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/stack"
)

// benchJWTCache measures what PostgREST's JWT cache costs in memory and
// whether replaying an expired token evicts it (PostgREST 12.0.2 never
// purges the cache by itself; authsvc's evictor replays every access token
// it issued once the token can no longer verify, docs/auth.md "PostgREST's
// JWT cache").
//
// It signs c.cacheTokens distinct access tokens with the stack's current
// key (each for a session that does not exist: PostgREST verifies and
// caches the token, then the gate refuses it with session_revoked, which
// keeps the database's part small), sends each once straight to
// PostgREST, and reads PostgREST's resident memory. Then it replays them
// all after they expired (PostgREST's lookup drops an expired entry and
// does not cache a token that no longer verifies), and sends as many new
// ones: if the replay evicted the first batch, the second batch reuses its
// memory instead of adding as much again.
func benchJWTCache(ctx context.Context, st *stack.Stack, c config) error {
	n := c.cacheTokens
	fmt.Printf("\n== PostgREST's JWT cache: memory for %d distinct tokens, and eviction ==\n", n)
	priv, kid, issuer, audience, err := currentKey(ctx, st)
	if err != nil {
		return err
	}
	pid := st.Pid(stack.Postgrest)
	if pid == 0 {
		return errors.New("PostgREST is not running")
	}
	// Each token expires 2 s after it is signed: long enough to reach
	// PostgREST and be cached, short enough that the whole batch can be
	// replayed expired (past PostgREST's 30 s of skew) soon after.
	const life = 2 * time.Second
	mint := func() (string, time.Time) {
		now := time.Now()
		exp := now.Add(life)
		claims := map[string]any{
			"iss": issuer, "aud": audience, "sub": uuid.NewString(), "sid": uuid.NewString(),
			"role": signer.Role, "kid": kid, "jti": rand.Text(), "iat": now.Unix(), "exp": exp.Unix(),
		}
		return signJWT(priv, kid, claims), exp
	}

	before, err := rss(pid)
	if err != nil {
		return err
	}
	first, exps, res, err := sendTokens(ctx, st.PostgrestURL(), n, mint, nil)
	if err != nil {
		return err
	}
	after1, _ := rss(pid)
	fmt.Printf("PostgREST resident memory: %s at the start\n", mib(before))
	fmt.Printf("  %d distinct valid tokens, each sent once (%s): %s (+%s, %s per token)\n",
		n, res, mib(after1), mib(after1-before), fmt.Sprintf("%.0f bytes", float64(after1-before)/float64(n)))

	// Every token must be past exp + PostgREST's 30 s of skew (and a
	// second of rounding) before it is replayed.
	last := slices.MaxFunc(exps, time.Time.Compare).Add(31 * time.Second)
	if d := time.Until(last); d > 0 {
		fmt.Printf("  waiting %.0f s until every token is past its expiry and PostgREST's 30 s of skew …\n", d.Seconds())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	i := 0
	replay := func() (string, time.Time) { i++; return first[i-1], time.Time{} }
	_, _, res, err = sendTokens(ctx, st.PostgrestURL(), n, replay, []int{http.StatusUnauthorized})
	if err != nil {
		return err
	}
	after2, _ := rss(pid)
	fmt.Printf("  the same tokens replayed after they expired (%s): %s\n", res, mib(after2))
	_, _, res, err = sendTokens(ctx, st.PostgrestURL(), n, mint, nil)
	if err != nil {
		return err
	}
	after3, _ := rss(pid)
	fmt.Printf("  %d new distinct tokens (%s): %s (+%s since the first batch)\n", n, res, mib(after3), mib(after3-after1))
	return nil
}

// sendTokens sends n requests straight to PostgREST, each with the next
// token from next, 32 at a time, and checks each answer's status (401
// session_revoked from the gate for a token PostgREST took; want, when
// given, instead).
func sendTokens(ctx context.Context, base string, n int, next func() (string, time.Time), want []int) ([]string, []time.Time, string, error) {
	tokens := make([]string, n)
	exps := make([]time.Time, n)
	var mu sync.Mutex
	var idx atomic.Int64
	var fails atomic.Int64
	var firstErr error
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(idx.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				mu.Lock()
				tok, exp := next()
				tokens[i], exps[i] = tok, exp
				mu.Unlock()
				code, err := askPostgrest(ctx, hc, base, tok)
				ok := err == nil && code == "session_revoked"
				if want != nil {
					ok = err == nil && code == "PGRST301"
				}
				if !ok {
					if fails.Add(1) == 1 {
						mu.Lock()
						firstErr = fmt.Errorf("token %d: PostgREST answered %q (%v)", i, code, err)
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, nil, "", fmt.Errorf("%d of %d answers were not as expected; first: %w", fails.Load(), n, firstErr)
	}
	el := time.Since(start)
	return tokens, exps, fmt.Sprintf("%.0f req/s", float64(n)/el.Seconds()), ctx.Err()
}

// askPostgrest sends one read with token and returns the error code of
// the answer ("" for a 2xx).
func askPostgrest(ctx context.Context, hc *http.Client, base, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/vaults?select=id&limit=1", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 300 {
		return "", nil
	}
	var e struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Code, nil
}

func signJWT(priv ed25519.PrivateKey, kid string, claims map[string]any) string {
	seg := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := seg(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": kid}) + "." + seg(claims)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(in)))
}

// currentKey opens the stack's current signing key with its
// key-encryption key (hex, as the stack runner writes it), and reads the
// issuer and audience tokens must carry.
func currentKey(ctx context.Context, st *stack.Stack) (priv ed25519.PrivateKey, kid, issuer, audience string, err error) {
	conn, err := pgx.Connect(ctx, st.AdminDSN())
	if err != nil {
		return nil, "", "", "", err
	}
	defer conn.Close(ctx)
	var k store.SigningKey
	if err := conn.QueryRow(ctx, `SELECT k.kid, k.public_key, k.private_sealed, p.issuer, p.audience
		FROM auth.signing_keys k, auth.token_policy p WHERE k.state = 'current'`).
		Scan(&k.KID, &k.Public, &k.Sealed, &issuer, &audience); err != nil {
		return nil, "", "", "", fmt.Errorf("current signing key: %w", err)
	}
	kek, err := hex.DecodeString(st.KeyEncryptionKey())
	if err != nil {
		return nil, "", "", "", err
	}
	priv, err = signer.OpenPrivateKey(kek, k)
	return priv, k.KID, issuer, audience, err
}

// rss is a process's resident memory in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
