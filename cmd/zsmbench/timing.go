package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/internal/mannwhitney"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/srpgroup"
	"zsm.dev/zsm/stack"
)

// benchTiming asks whether a client can tell by timing that an identity is
// not registered: c.samples login/init (and login/params) requests for a
// registered identity and as many for one that is not, interleaved in
// random order so that load changes hit both alike, through the gateway.
// It prints the medians and the Mann–Whitney U test's U, z and two-sided p;
// a small p (below 0.001, say) means the two are told apart.
func benchTiming(ctx context.Context, st *stack.Stack, c config) error {
	fmt.Printf("\n== timing of registered vs unknown identities (%d requests each, interleaved) ==\n", c.samples)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	kdf := api.KDF{Alg: "argon2id", Salt: base64.StdEncoding.EncodeToString(secret[:16]), MemoryKiB: 65536, Iterations: 3, Parallelism: 4}
	ac := authclient.New(st.GatewayURL())
	known := fmt.Sprintf("timing-%d@example.test", time.Now().UnixNano())
	knownID, err := srpgroup.ParseIdentity(known)
	if err != nil {
		return err
	}
	if _, err := ac.Signup(ctx, knownID, secret, kdf); err != nil {
		return err
	}
	unknown := fmt.Sprintf("nobody-%d@example.test", time.Now().UnixNano())

	// One valid A for every request: the server's work does not depend on it.
	cl, err := srpgroup.Env().NewClient([]byte(known), secret)
	if err != nil {
		return err
	}
	cred := cl.Credentials()
	A, _ := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	post := func(path string, body any) (time.Duration, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, st.GatewayURL()+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		t := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t)
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("POST %s: %d", path, resp.StatusCode)
		}
		return d, nil
	}
	for _, ep := range []struct {
		name, path string
		body       func(identity string) any
	}{
		{"login/init", "/auth/v1/login/init", func(id string) any { return map[string]string{"identity": id, "a": A.Text(16)} }},
		{"login/params", "/auth/v1/login/params", func(id string) any { return map[string]string{"identity": id} }},
	} {
		for i := 0; i < 20; i++ { // warm up both paths
			if _, err := post(ep.path, ep.body(known)); err != nil {
				return err
			}
			if _, err := post(ep.path, ep.body(unknown)); err != nil {
				return err
			}
		}
		var k, u []float64
		for i := 0; i < c.samples; i++ {
			order := []string{known, unknown}
			if mrand.IntN(2) == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, id := range order {
				d, err := post(ep.path, ep.body(id))
				if err != nil {
					return err
				}
				if id == known {
					k = append(k, ms(d))
				} else {
					u = append(u, ms(d))
				}
			}
		}
		r := mannwhitney.Test(u, k)
		mk, mu := mannwhitney.Median(k), mannwhitney.Median(u)
		verdict := "not told apart"
		if r.P < 0.001 {
			verdict = "TOLD APART"
		}
		fmt.Printf("%-12s median registered %.3f ms, unknown %.3f ms (unknown − registered %+.3f ms); Mann–Whitney U %.0f, z %+.2f, p %.3g: %s\n",
			ep.name, mk, mu, mu-mk, r.U, r.Z, r.P, verdict)
	}
	return nil
}
