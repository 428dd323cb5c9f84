//go:build !unix

package cli

// lockFile is a no-op where flock does not exist; concurrent zsm commands
// there may race on a token refresh.
func lockFile(string) (func(), error) { return func() {}, nil }
