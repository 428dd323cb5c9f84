// Package ratelimit counts attempts in Redis, so that every authsvc replica
// shares one count: fixed windows per key (Limiter) and the login-failure
// counters per identity and per identity and address prefix (Attempts).
//
// It fails closed: when Redis cannot be asked, Allow returns an error and the
// caller refuses the request (503) rather than letting it through uncounted.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limiter counts attempts per key.
type Limiter struct {
	rdb redis.UniversalClient
}

// New returns a Limiter.
func New(rdb redis.UniversalClient) *Limiter { return &Limiter{rdb: rdb} }

// incr adds one to a counter and starts its window on the first hit. One
// key per call, so it runs on a Redis Cluster as on one node.
var incr = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
`)

// Decision is the outcome of one Allow.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration // when not allowed: until the window ends or the backoff is over
	Reason     string        // when an Attempts.Begin is not allowed: ReasonBackoff or ReasonIdentity
}

// Allow counts one attempt against key and says whether it stays within
// limit attempts per window.
func (l *Limiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (Decision, error) {
	res, err := incr.Run(ctx, l.rdb, []string{"zsm:rl:" + key}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: %w", err)
	}
	if len(res) != 2 {
		return Decision{}, fmt.Errorf("ratelimit: unexpected reply")
	}
	if res[0] <= int64(limit) {
		return Decision{Allowed: true}, nil
	}
	return Decision{Allowed: false, RetryAfter: time.Duration(res[1]) * time.Millisecond}, nil
}
