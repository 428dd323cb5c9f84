package ratelimit

import (
	"testing"
	"time"
)

func TestMaxFromOnePrefix(t *testing.T) {
	p := FailurePolicy{PerIdentity: 100, Window: time.Hour, Free: 10, BackoffBase: time.Second, BackoffMax: 15 * time.Minute}
	// 10 at once; then after 1, 2, 4, … 512 s (1023 s in all) ten more;
	// then every 15 minutes: at 1923 s and 2823 s; 3723 s is past the hour.
	if got := p.MaxFromOnePrefix(); got != 22 {
		t.Fatalf("MaxFromOnePrefix = %d, want 22", got)
	}
	p = FailurePolicy{PerIdentity: 20, Window: time.Minute, Free: 2, BackoffBase: 10 * time.Second, BackoffMax: 10 * time.Second}
	if got := p.MaxFromOnePrefix(); got != 7 { // 2, then at 10, 20, 30, 40, 50 s
		t.Fatalf("MaxFromOnePrefix = %d, want 7", got)
	}
}
