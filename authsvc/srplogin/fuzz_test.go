package srplogin_test

import (
	"strconv"
	"strings"
	"testing"

	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/srpgroup"
)

// FuzzRestoreServer feeds arbitrary strings where sealed handshake state is
// expected. RestoreServer must never panic, and whatever it accepts must be a
// server of the pinned group and hash whose state survives another round.
// Seeds: testdata/fuzz/FuzzRestoreServer (a genuine state and malformed
// variants of it).
func FuzzRestoreServer(f *testing.F) {
	st, _ := realState(f)
	f.Add(st)
	f.Fuzz(func(t *testing.T, s string) {
		srv, err := srplogin.RestoreServer(s)
		if err != nil {
			if srv != nil {
				t.Fatal("server returned alongside an error")
			}
			return
		}
		m := srv.Marshal()
		fields := strings.Split(m, ":")
		if len(fields) != 8 || fields[0] != strconv.Itoa(srpgroup.Bits) || fields[1] != strconv.Itoa(int(srpgroup.Hash)) {
			t.Fatalf("accepted state of another group or hash: %.80q", m)
		}
		again, err := srplogin.RestoreServer(m)
		if err != nil {
			t.Fatalf("state re-marshalled from an accepted one is refused: %v", err)
		}
		if again.Marshal() != m {
			t.Fatal("marshal is not stable after one round")
		}
		// Using the restored server must not panic either.
		srv.ClientOk(strings.Repeat("ab", 32))
		srv.ClientOk("")
	})
}
