package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// FailurePolicy bounds login attempts that do not end in a correct proof.
//
// Two counters, both in Redis and both kept for unknown identities exactly
// as for known ones (so they say nothing about who is registered):
//
//   - per identity: at most PerIdentity unproven attempts per Window, from
//     anywhere (NIST SP 800-63B allows at most 100 failures per account);
//     past that, only address prefixes the identity logged in from within
//     KnownFor may still try;
//   - per identity and address prefix: Free attempts, then the k-th further
//     one only BackoffBase·2^(k−1) after the one before it, the wait capped
//     at BackoffMax.
//
// An attempt is counted when it starts (login/init, password/init) and
// forgiven when its proof is correct, so handshakes opened in parallel
// cannot outrun the backoff: counting only at verify would let one address
// open dozens of handshakes before the first failure is known.
type FailurePolicy struct {
	PerIdentity int
	Window      time.Duration
	Free        int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	KnownFor    time.Duration
}

// MaxFromOnePrefix is how many attempts one address prefix can make for
// one identity within one Window under p (no successes in between): the
// free ones at once, then one after each backoff step that ends within the
// window.
func (p FailurePolicy) MaxFromOnePrefix() int {
	if p.BackoffBase <= 0 {
		return int(^uint(0) >> 1)
	}
	n, at, d := p.Free, time.Duration(0), p.BackoffBase
	for {
		at += min(d, p.BackoffMax)
		if at >= p.Window {
			return n
		}
		n++
		if d < p.BackoffMax {
			d *= 2
		}
	}
}

// Attempts keeps the failure counters of a FailurePolicy.
type Attempts struct {
	rdb redis.UniversalClient
	p   FailurePolicy
}

// NewAttempts returns the counters for p. The configuration makes sure
// that p.MaxFromOnePrefix() < p.PerIdentity: from one address prefix
// nobody can use up an identity's allowance, so nobody without the password
// locks its owner out from a single network.
func NewAttempts(rdb redis.UniversalClient, p FailurePolicy) *Attempts {
	return &Attempts{rdb: rdb, p: p}
}

// Reasons a Begin refuses.
const (
	ReasonBackoff  = "backoff"  // this identity from this address prefix must wait
	ReasonIdentity = "identity" // this identity has no attempts left in the window
)

// keys are the counters of identity and prefix. They share a hash tag, so
// one script touches them all on one Redis Cluster node; the identity is
// hashed so keys stay short whatever it is.
func keys(identity, prefix string) []string {
	h := sha256.Sum256([]byte(identity))
	tag := "zsm:lf:{" + hex.EncodeToString(h[:16]) + "}:"
	return []string{tag + "n", tag + "p:" + prefix, tag + "w:" + prefix, tag + "k:" + prefix}
}

// begin: KEYS identity count, pair count, pair wait, known prefix;
// ARGV per-identity limit, window ms, free, backoff base ms, backoff cap ms.
var begin = redis.NewScript(`
local wait = redis.call('PTTL', KEYS[3])
if wait > 0 then return {0, wait, 'backoff'} end
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) and redis.call('EXISTS', KEYS[4]) == 0 then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = tonumber(ARGV[2]) end
  return {0, ttl, 'identity'}
end
if redis.call('INCR', KEYS[1]) == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local pc = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local free = tonumber(ARGV[3])
if pc >= free then
  local d = tonumber(ARGV[4]) * 2 ^ math.min(pc - free, 40)
  if d > tonumber(ARGV[5]) then d = tonumber(ARGV[5]) end
  redis.call('SET', KEYS[3], '1', 'PX', math.floor(d))
end
return {1, 0, ''}
`)

// succeeded: same KEYS; ARGV how long the prefix stays known, ms.
var succeeded = redis.NewScript(`
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[1])
return 1
`)

// Begin counts a login attempt for identity from an address prefix, or
// refuses it (Allowed false, with the reason and how long to wait) while
// the pair backs off or the identity has no attempts left for this prefix.
// Redis trouble is an error: the caller refuses the attempt.
func (a *Attempts) Begin(ctx context.Context, identity, prefix string) (Decision, error) {
	res, err := begin.Run(ctx, a.rdb, keys(identity, prefix), a.p.PerIdentity, a.p.Window.Milliseconds(),
		a.p.Free, a.p.BackoffBase.Milliseconds(), a.p.BackoffMax.Milliseconds()).Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: %w", err)
	}
	if len(res) != 3 {
		return Decision{}, errors.New("ratelimit: unexpected reply")
	}
	ok, _ := res[0].(int64)
	wait, _ := res[1].(int64)
	reason, _ := res[2].(string)
	if ok == 1 {
		return Decision{Allowed: true}, nil
	}
	return Decision{RetryAfter: time.Duration(wait) * time.Millisecond, Reason: reason}, nil
}

// Succeeded forgives the attempt a correct proof ended, clears the backoff
// of identity from prefix, and remembers prefix as one the identity logs
// in from (KnownFor long), so the identity-wide limit does not apply there.
func (a *Attempts) Succeeded(ctx context.Context, identity, prefix string) error {
	if err := succeeded.Run(ctx, a.rdb, keys(identity, prefix), a.p.KnownFor.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("ratelimit: %w", err)
	}
	return nil
}
