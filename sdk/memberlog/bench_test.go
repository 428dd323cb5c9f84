package memberlog_test

import (
	"fmt"
	"testing"

	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

// bigLog builds a log of n entries: the creator adds members, changes
// roles, removes some (each a new generation) and rotates, in a fixed
// pattern; it returns the rows as stored (text) and every key record.
func bigLog(b *testing.B, n int) (entries, sigs []string, keys []trust.Identity, self user) {
	users := []user{alice}
	for i := 1; len(users) < 200; i++ {
		users = append(users, newUser(fmt.Sprintf("member%03d", i), byte(i)))
	}
	for _, u := range users {
		keys = append(keys, u.ident)
	}
	s, _ := memberlog.New(vaultID, keys...)
	l := &log{t: b, s: s, now: t0}
	l.append(alice, memberlog.OpCreate, alice, "owner")
	next := 1
	var added []user
	for len(l.rows) < n {
		switch k := len(l.rows) % 10; {
		case k == 7 && len(added) > 3:
			l.append(alice, memberlog.OpRemove, added[0], "")
			added = added[1:]
		case k == 8 && len(added) > 3:
			l.append(alice, memberlog.OpChangeRole, added[1], "viewer")
		case k == 9:
			l.append(alice, memberlog.OpRotate, alice, "")
		default:
			u := users[next]
			next++
			l.append(alice, memberlog.OpAdd, u, "editor")
			added = append(added, u)
		}
	}
	for _, r := range l.rows {
		e, s := r.Row()
		entries, sigs = append(entries, e), append(sigs, s)
	}
	return entries, sigs, keys, added[len(added)-1]
}

// BenchmarkOpen200 measures what opening a shared vault costs in its log: parse
// 200 stored entries, replay them (a signature check each) against the key
// records, check the remembered head and the trust anchor.
func BenchmarkOpen200(b *testing.B) {
	entries, sigs, keys, self := bigLog(b, 200)
	var first []memberlog.Signed
	for i := range entries {
		r, _ := memberlog.ParseRow(entries[i], sigs[i])
		first = append(first, r)
	}
	s, err := memberlog.Replay(vaultID, first, keys)
	if err != nil {
		b.Fatal(err)
	}
	remembered := memberlog.Head{Seq: 150}
	remembered.Hash, _ = s.HashAt(150)
	b.ReportAllocs()
	for b.Loop() {
		rows := make([]memberlog.Signed, len(entries))
		for i := range entries {
			r, err := memberlog.ParseRow(entries[i], sigs[i])
			if err != nil {
				b.Fatal(err)
			}
			rows[i] = r
		}
		s, _, err := memberlog.Open(vaultID, rows, keys, remembered, self.id, self.fp, pins(alice))
		if err != nil {
			b.Fatal(err)
		}
		if s.Head().Seq != 200 {
			b.Fatal("short log")
		}
	}
}
