package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"zsm.dev/zsm/stack"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux this runs on).
const clockTick = 10 * time.Millisecond

// cpuMeter reads the CPU time that the services of the stack and this
// process have used so far. A figure of CPU time per request does not
// depend on what else the machine runs, unlike a request rate, so it
// tells apart changes that throughput on a shared machine cannot.
type cpuMeter struct {
	// roots maps a component's name to the process the stack runner
	// started; its descendants (PostgreSQL's backends, nginx's workers)
	// count for it too.
	roots map[string]int
}

// components are the parts a read passes through, in print order; "client"
// is this process (the load generator).
var components = []string{"PostgREST", "PostgreSQL", "nginx", "client"}

func newCPUMeter(st *stack.Stack) *cpuMeter {
	m := &cpuMeter{roots: map[string]int{}}
	for name, svc := range map[string]string{"PostgREST": stack.Postgrest, "PostgreSQL": stack.Postgres, "nginx": stack.Nginx} {
		if info := st.State().Services[svc]; info != nil && info.Pid > 0 {
			m.roots[name] = info.Pid
		}
	}
	return m
}

// sample returns each component's CPU time so far: every live process
// descending from the service's process, plus what that process has
// collected from children that ended. (Descent, not the session: each
// PostgreSQL backend starts a session of its own.)
func (m *cpuMeter) sample() map[string]time.Duration {
	type proc struct {
		ppid          int
		ticks, reaped int64
	}
	procs := map[int]proc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		// Fields after the command: state(3) ppid(4) … utime(14) stime(15)
		// cutime(16) cstime(17), counted from 1 as in proc(5).
		f := strings.Fields(s[i+1:])
		if len(f) < 15 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		ppid, _ := strconv.Atoi(f[1])
		procs[pid] = proc{ppid: ppid, ticks: atoi(f[11]) + atoi(f[12]), reaped: atoi(f[13]) + atoi(f[14])}
	}
	byRoot := map[int]string{}
	for name, pid := range m.roots {
		byRoot[pid] = name
	}
	out := map[string]time.Duration{}
	for pid, p := range procs {
		ticks := p.ticks
		if _, ok := byRoot[pid]; ok {
			ticks += p.reaped
		}
		for a, hops := pid, 0; a > 1 && hops < 64; a, hops = procs[a].ppid, hops+1 {
			if name, ok := byRoot[a]; ok {
				out[name] += time.Duration(ticks) * clockTick
				break
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		out["client"] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return out
}

func atoi(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

// cpuPer is CPU time per request of each component between two samples.
type cpuPer map[string]time.Duration

func perRequest(before, after map[string]time.Duration, n int) cpuPer {
	out := cpuPer{}
	if n == 0 {
		return out
	}
	for _, c := range components {
		out[c] = (after[c] - before[c]) / time.Duration(n)
	}
	return out
}

func (c cpuPer) total() time.Duration {
	var t time.Duration
	for _, v := range c {
		t += v
	}
	return t
}

// server is the CPU per request of everything but the load generator.
func (c cpuPer) server() time.Duration { return c.total() - c["client"] }

func (c cpuPer) String() string {
	var b strings.Builder
	for _, name := range components {
		fmt.Fprintf(&b, "%s %4.0f  ", name, us(c[name]))
	}
	fmt.Fprintf(&b, "server %4.0f  total %4.0f µs", us(c.server()), us(c.total()))
	return b.String()
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
