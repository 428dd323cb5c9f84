//go:build unix

package cli

import (
	"os"
	"syscall"
)

// forwardedSignals are passed on to the child of `zsm run`.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// signalExit is the exit code of a child killed by a signal (128+n, as
// shells report it), or -1.
func signalExit(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return -1
}
