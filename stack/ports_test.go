package stack

import (
	"errors"
	"net"
	"testing"
)

// A port another process holds is ErrPortInUse, which StartTemp answers
// by starting again on other ports; a free one is not.
func TestCheckPortSaysInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := (&Stack{}).checkPort("postgres", port); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("a held port: %v, want ErrPortInUse", err)
	}
	l.Close()
	if err := (&Stack{}).checkPort("postgres", port); err != nil {
		t.Fatalf("the port once released: %v", err)
	}
}
