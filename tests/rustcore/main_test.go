// Package rustcore runs the Rust client core (crates/zsm-core) against the
// real stack: interoperability with the Go CLI both ways and the
// malicious-server cases the Go SDK refuses, through a tampering proxy. It
// also keeps the core's generated identity tables equal to what Go
// computes, and compares every strict parser with Go's. If the stack cannot
// start, or cargo is missing, the tests fail: there is no silent skip.
package rustcore

import (
	"os"
	"testing"

	"zsm.dev/zsm/stack"
	"zsm.dev/zsm/tests/internal/stacktest"
)

func TestMain(m *testing.M) {
	os.Exit(stacktest.Run(m, "zsm-rust-", stack.Config{LoginRatePerSecond: 50, LoginBurst: 100}))
}

// need fails the test when the stack did not start.
func need(t *testing.T) *stack.Stack {
	t.Helper()
	return stacktest.Need(t)
}
