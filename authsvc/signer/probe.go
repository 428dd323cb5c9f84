package signer

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/authsvc/store"
)

// HTTPProber asks PostgREST itself whether it took a key: it signs a token
// with the key for a session that does not exist and expects the gate's
// refusal (session_revoked, or token_expired within RevocationWindow of a
// revocation: the signature was accepted, then the gate refused), not
// PostgREST's signature refusal (PGRST301). It also checks
// that an HS256 token keyed with the JWKS text is refused, the forgery
// PostgREST 12 would accept had it mistaken the JWKS for an HMAC secret.
type HTTPProber struct {
	URL              string // PostgREST's base URL
	Issuer, Audience string
	KEK              []byte
	Client           *http.Client
	Timeout          time.Duration // how long to wait for PostgREST to reload (default 5 s)
}

func jwsSegment(v any) string {
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// probeClaims are the claims of a probe token: ours, for a session that
// does not exist, valid for a minute; extra pairs are added.
func (p *HTTPProber) probeClaims(extra ...any) map[string]any {
	now := time.Now().Unix()
	claims := map[string]any{
		"iss": p.Issuer, "aud": p.Audience, "sub": uuid.NewString(), "sid": uuid.NewString(),
		"role": Role, "iat": now, "exp": now + 60,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		claims[extra[i].(string)] = extra[i+1]
	}
	return claims
}

// signEdDSA signs claims with priv under a header naming kid.
func signEdDSA(priv ed25519.PrivateKey, kid string, claims map[string]any) string {
	in := jwsSegment(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": kid}) + "." + jwsSegment(claims)
	return in + "." + jwsSegment(ed25519.Sign(priv, []byte(in)))
}

// Probe implements Prober.
func (p *HTTPProber) Probe(ctx context.Context, key store.SigningKey, jwks []byte) error {
	priv, err := OpenPrivateKey(p.KEK, key)
	if err != nil {
		return err
	}
	claims := p.probeClaims()
	token := signEdDSA(priv, key.KID, claims)

	mac := hmac.New(sha256.New, jwks)
	forged := jwsSegment(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." + jwsSegment(claims)
	mac.Write([]byte(forged))
	forged += "." + jwsSegment(mac.Sum(nil))

	timeout := p.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		code, err := p.ask(ctx, token)
		// The gate answered (the session does not exist, or, within
		// RevocationWindow of a revocation, the token is dated before the
		// cutoff): PostgREST verified the signature. PostgREST's own
		// refusal would be PGRST301.
		if err == nil && (code == "session_revoked" || code == "token_expired") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgREST answered %q (%v) to a token of the new key", code, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if code, err := p.ask(ctx, forged); err != nil || code != "PGRST301" {
		return fmt.Errorf("PostgREST did not refuse an HS256 token keyed with the JWKS (answer %q, %v): it may be using the JWKS as an HMAC secret", code, err)
	}
	return nil
}

// ProbeRevoked waits until PostgREST itself refuses the signature of the
// revoked key (401 PGRST301), which the issued-at cutoff assumes happens
// within RevocationReload of the commit. The probe token names the
// published key publishedKID, so that the gate's own key check lets it
// through: while PostgREST still verifies the revoked key, the gate answers
// (the token is dated before the cutoff, or its session does not exist).
func (p *HTTPProber) ProbeRevoked(ctx context.Context, revoked store.SigningKey, publishedKID string) error {
	priv, err := OpenPrivateKey(p.KEK, revoked)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(RevocationReload)
	for i := 0; ; i++ {
		claims := p.probeClaims("kid", publishedKID, "jti", fmt.Sprintf("revocation-probe-%d", i))
		code, err := p.ask(ctx, signEdDSA(priv, publishedKID, claims))
		if err == nil && code == "PGRST301" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgREST still verifies the revoked key %s %s after the commit (last answer %q, %v)", revoked.KID, RevocationReload, code, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ask sends a request with token and returns the error code of the answer.
func (p *HTTPProber) ask(ctx context.Context, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Code string `json:"code"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	_ = json.Unmarshal(data, &body)
	if resp.StatusCode != http.StatusUnauthorized {
		return body.Code, fmt.Errorf("status %d", resp.StatusCode)
	}
	return body.Code, nil
}
