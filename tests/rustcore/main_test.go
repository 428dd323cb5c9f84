// Package rustcore runs the Rust client core (crates/zsm-core) against the
// real stack: interoperability with the Go CLI both ways and the
// malicious-server cases the Go SDK refuses, through a tampering proxy. It
// also keeps the core's generated identity tables equal to what Go
// computes. If the stack cannot start, or cargo is missing, the tests fail:
// there is no silent skip.
package rustcore

import (
	"os"
	"testing"

	"zsm.dev/zsm/stack"
)

var (
	st       *stack.Stack
	startErr error
)

func TestMain(m *testing.M) {
	var stop func()
	st, stop, startErr = stack.StartTemp("zsm-rust-", stack.Config{LoginRatePerSecond: 50, LoginBurst: 100})
	code := m.Run()
	stop()
	os.Exit(code)
}

// need fails the test when the stack did not start.
func need(t *testing.T) *stack.Stack {
	t.Helper()
	if startErr != nil {
		t.Fatalf("the stack did not start: %v", startErr)
	}
	return st
}
