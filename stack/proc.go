package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ServiceUser is the unprivileged system user the services run as when the
// runner itself runs as root (PostgreSQL refuses to run as root).
const ServiceUser = "zsm"

type runAs struct {
	name     string
	uid, gid int
	cred     *syscall.Credential // nil: run as the current user
}

func (r runAs) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Credential: r.cred}
}

func (r runAs) chown(paths ...string) error {
	if r.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Lchown(p, r.uid, r.gid); err != nil {
			return fmt.Errorf("chown %s to %s: %w", p, r.name, err)
		}
	}
	return nil
}

// resolveRunAs returns who the services run as: the current user, or (as
// root) the system user zsm, created if needed.
func resolveRunAs(ctx context.Context) (runAs, error) {
	if os.Geteuid() != 0 {
		u, _ := user.Current()
		name := strconv.Itoa(os.Geteuid())
		if u != nil {
			name = u.Username
		}
		return runAs{name: name, uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup(ServiceUser)
	if err != nil {
		out, err2 := exec.CommandContext(ctx, "useradd", "--system", "--no-create-home",
			"--shell", "/usr/sbin/nologin", ServiceUser).CombinedOutput()
		if err2 != nil {
			// A concurrent runner may have created it meanwhile.
			if u, err = user.Lookup(ServiceUser); err != nil {
				return runAs{}, fmt.Errorf("create system user %s (useradd): %v: %s", ServiceUser, err2, bytes.TrimSpace(out))
			}
		} else if u, err = user.Lookup(ServiceUser); err != nil {
			return runAs{}, fmt.Errorf("look up user %s after useradd: %w", ServiceUser, err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return runAs{name: ServiceUser, uid: uid, gid: gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}, nil
}

// checkTraversable verifies that the service user can enter directory
// path: it and every ancestor must be searchable (o+x, or owner/group bits
// matching).
func (r runAs) checkTraversable(path string) error {
	if r.cred == nil {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		m := st.Mode().Perm()
		ok := m&0o001 != 0 ||
			(int(sys.Uid) == r.uid && m&0o100 != 0) ||
			(int(sys.Gid) == r.gid && m&0o010 != 0)
		if !ok {
			return fmt.Errorf("directory %s (mode %04o) is not searchable by the service user %s, so it cannot reach %s; "+
				"run `chmod o+x %s` or use a path under a world-searchable directory (set ZSM_CACHE_DIR / --dir)",
				dir, m, r.name, abs, dir)
		}
		if dir == "/" || dir == "." {
			return nil
		}
	}
}

// spawn starts a detached process (own session, so its whole group can be
// signalled) with stdout/stderr appended to logFile; it returns the pid.
func spawn(path string, args, env []string, dir, logFile string, ra runAs) (int, error) {
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return 0, err
	}
	defer lf.Close()
	if err := ra.chown(logFile); err != nil {
		return 0, err
	}
	fmt.Fprintf(lf, "---- zsm stack: starting %s at %s ----\n", filepath.Base(path), time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = ra.sysProcAttr()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", path, err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait() // reap it if it exits while we are still running
	return pid, nil
}

// procInfo reads /proc/<pid>/stat: process group id and whether it is a zombie.
func procInfo(pid int) (pgid int, zombie bool, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return 0, false, false
	}
	pgid, _ = strconv.Atoi(f[2])
	return pgid, f[0] == "Z" || f[0] == "X", true
}

// alive reports whether pid is a running (non-zombie) process.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, zombie, ok := procInfo(pid)
	return ok && !zombie
}

// groupMembers lists live processes whose process group is pgid.
func groupMembers(pgid int) []int {
	if pgid <= 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, zombie, ok := procInfo(pid); ok && g == pgid && !zombie {
			out = append(out, pid)
		}
	}
	return out
}

// isOurProcess checks that pid still runs the expected binary (guards
// against a recycled pid in a stale pid file).
func isOurProcess(pid int, binary string) bool {
	if !alive(pid) {
		return false
	}
	want := filepath.Base(binary)
	if r, err := filepath.EvalSymlinks(binary); err == nil {
		want = filepath.Base(r)
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		return filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == want
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return false
	}
	// Programs rewrite their title ("postgres: ...", "nginx: master process ...",
	// "/usr/bin/redis-server 127.0.0.1:6379").
	argv0 := strings.Fields(string(bytes.SplitN(b, []byte{0}, 2)[0]) + " ")[0]
	return filepath.Base(argv0) == want || strings.HasPrefix(argv0, want+":")
}

// treeMembers lists live processes in process group pgid plus every
// descendant of pgid (postgres children call setsid and leave the group).
func treeMembers(pgid int) []int {
	if pgid <= 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	type info struct{ ppid, pgid int }
	procs := map[int]info{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		pg, _ := strconv.Atoi(f[2])
		procs[pid] = info{pp, pg}
	}
	in := map[int]bool{}
	for pid, p := range procs {
		if p.pgid == pgid || pid == pgid {
			in[pid] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for pid, p := range procs {
			if !in[pid] && in[p.ppid] {
				in[pid] = true
				changed = true
			}
		}
	}
	out := make([]int, 0, len(in))
	for pid := range in {
		out = append(out, pid)
	}
	return out
}

// killGroup sends sig to the process group (and to descendants that left
// it), waits up to grace for all of them to go away, then SIGKILLs whatever
// is left and waits a little more.
func killGroup(ctx context.Context, pgid int, sig syscall.Signal, grace time.Duration) error {
	members := treeMembers(pgid)
	if len(members) == 0 {
		return nil
	}
	_ = syscall.Kill(-pgid, sig)
	if alive(pgid) {
		_ = syscall.Kill(pgid, sig)
	}
	if waitGone(ctx, members, grace) {
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for _, p := range members {
		if alive(p) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	if waitGone(context.Background(), members, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("process group %d did not exit after SIGKILL", pgid)
}

func waitGone(ctx context.Context, pids []int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := false
		for _, p := range pids {
			if alive(p) {
				left = true
				break
			}
		}
		if !left {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// portFree reports whether 127.0.0.1:port can be bound right now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// freePorts picks n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func readPidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// tailFile returns the last n lines of a file ("" if unreadable).
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	const max = 64 << 10
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, os.ErrClosed) && len(buf) == 0 {
		return ""
	}
	return TailLines(string(buf), n)
}

// TailLines is the last n lines of s (error messages quote the end of a
// command's output).
func TailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestingTB is the part of testing.TB that TempDir needs.
type TestingTB interface {
	Helper()
	TempDir() string
	Fatalf(format string, args ...any)
}

// TempDir returns a fresh state directory for a test stack that the service
// user can reach when tests run as root: t.TempDir() and its parent (both
// created 0700) are made world-searchable (o+x; nothing becomes listable or
// writable). Stop the stack in a t.Cleanup registered after this call.
func TempDir(tb TestingTB) string {
	tb.Helper()
	d := tb.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		st, err := os.Stat(p)
		if err != nil {
			tb.Fatalf("stack.TempDir: %v", err)
		}
		if err := os.Chmod(p, st.Mode().Perm()|0o711); err != nil {
			tb.Fatalf("stack.TempDir: %v", err)
		}
	}
	return d
}
