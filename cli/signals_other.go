//go:build !unix

package cli

import "os"

var forwardedSignals = []os.Signal{os.Interrupt}

func signalExit(*os.ProcessState) int { return -1 }
