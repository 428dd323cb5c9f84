package rustcore

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/desktop/toolchain"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/srpgroup"
	"zsm.dev/zsm/stack"
)

// repoRoot is where the Cargo workspace and the Go module live.
const repoRoot = "../.."

// TargetDir is where cargo builds: toolchain.CargoTargetDir's directory
// for this checkout (the one Taskfile.yml passes as CARGO_TARGET_DIR).
func TargetDir() (string, error) {
	return toolchain.CargoTargetDir(repoRoot)
}

// TestRustCoreAgainstStack runs crates/zsm-core's stack tests (cargo test
// --features stack-tests --test stack) against this package's throwaway
// stack: the malicious-server cases through a tampering proxy, and
// interoperability with the Go CLI built from this tree, both ways. It also
// hands the Rust core every code point to normalize as an identity and
// compares each answer with srpgroup.NormalizeIdentity's, and every input of
// the parser corpus (parsers_test.go) to parse, compared with the Go SDK's
// answer.
func TestRustCoreAgainstStack(t *testing.T) {
	s := need(t)
	cargo, err := exec.LookPath("cargo")
	if err != nil {
		t.Fatalf("cargo is needed to test the Rust core: %v", err)
	}
	target, err := TargetDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cli := filepath.Join(dir, "zsm")
	build := exec.Command("go", "build", "-o", cli, "./cmd/zsm")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the zsm CLI: %v\n%s", err, out)
	}
	corpus := filepath.Join(dir, "identities.tsv")
	n, err := writeIdentityCorpus(corpus)
	if err != nil {
		t.Fatal(err)
	}
	parsers := filepath.Join(dir, "parsers.tsv")
	np, err := writeParserCorpus(parsers)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	legacy, err := legacyAccount(ctx, s)
	if err != nil {
		t.Fatalf("preparing an account without a key record: %v", err)
	}
	// --workspace, though only zsm-core's stack test runs: features are
	// resolved for the whole workspace then, as for `cargo test --workspace`
	// and the desktop app's build, so the dependencies they compiled are
	// reused (with -p zsm-core, tokio and everything over it would be
	// compiled again with other features).
	cmd := exec.CommandContext(ctx, cargo, "test", "--locked", "--workspace", "--features", "zsm-core/stack-tests", "--test", "stack", "--", "--nocapture")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(),
		"CARGO_TARGET_DIR="+target,
		"ZSM_TEST_GATEWAY="+s.GatewayURL(),
		"ZSM_TEST_CLI="+cli,
		"ZSM_TEST_DIR="+dir,
		"ZSM_TEST_IDENTITIES="+corpus,
		fmt.Sprintf("ZSM_TEST_IDENTITY_COUNT=%d", n),
		"ZSM_TEST_PARSERS="+parsers,
		fmt.Sprintf("ZSM_TEST_PARSER_COUNT=%d", np),
		"ZSM_TEST_LEGACY_IDENTITY="+legacy.identity,
		"ZSM_TEST_LEGACY_PASSWORD="+legacy.password,
		"ZSM_TEST_LEGACY_SECRET_KEY="+legacy.secretKey,
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("cargo test --features stack-tests (%s):\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("the Rust core's stack tests failed: %v", err)
	}
	// The harness must have run: a filtered or empty run is a failure.
	if !strings.Contains(string(out), "test result: ok.") || strings.Contains(string(out), " 0 passed") {
		t.Fatal("cargo ran no stack test")
	}
}

// legacy is an account as it was before key records existed.
type legacy struct{ identity, password, secretKey string }

// legacyAccount signs up an account as a client from before key bundle
// version 2 did (a version 1 bundle: no X-Wing key, keys derived from the
// password and a Secret Key as the SDK derives them) and removes its key
// record in the database, as for an account made before records existed:
// the Rust core must upgrade it (which publishes its record) at its next
// login.
func legacyAccount(ctx context.Context, s *stack.Stack) (legacy, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return legacy{}, err
	}
	l := legacy{identity: "legacy-" + hex.EncodeToString(b[:]) + "@example.test", password: "a legacy password " + hex.EncodeToString(b[:3])}
	id, err := srpgroup.ParseIdentity(l.identity)
	if err != nil {
		return legacy{}, err
	}
	sk, err := keys.NewSecretKey(rand.Reader)
	if err != nil {
		return legacy{}, err
	}
	kdf, err := keys.DefaultKDF(rand.Reader)
	if err != nil {
		return legacy{}, err
	}
	d, err := keys.Derive(l.password, sk, id.String(), kdf)
	if err != nil {
		return legacy{}, err
	}
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		return legacy{}, err
	}
	uid := uuid.New()
	bundle, err := ak.Bundle(d.UnlockKey, uid, rand.Reader)
	if err != nil {
		return legacy{}, err
	}
	if bundle.Version != keys.BundleV1 {
		return legacy{}, fmt.Errorf("a bundle of version %d, want 1", bundle.Version)
	}
	raw, err := json.Marshal(bundle)
	if err != nil {
		return legacy{}, err
	}
	sig, err := keyrecord.Sign(keyrecord.Record{UserID: uid, Identity: id.String(), X25519: ak.X25519.PublicKey().Bytes(),
		Ed25519: ak.Ed25519.Public().(ed25519.PublicKey)}, ak.Ed25519)
	if err != nil {
		return legacy{}, err
	}
	if _, err := authclient.New(s.GatewayURL()).SignupAccount(ctx, authclient.Account{UserID: uid.String(), Identity: id,
		Secret: d.SRPSecret, KDF: api.KDF(kdf), KeyBundle: raw, KeyRecordSignature: sig}); err != nil {
		return legacy{}, err
	}
	l.secretKey = sk.Text()
	conn, err := pgx.Connect(ctx, s.AdminDSN())
	if err != nil {
		return legacy{}, err
	}
	defer conn.Close(context.Background())
	tag, err := conn.Exec(ctx, `UPDATE api.public_keys SET key_record_version = NULL, key_record_signature = NULL WHERE user_id = $1`, uid)
	if err != nil {
		return legacy{}, err
	}
	if tag.RowsAffected() != 1 {
		return legacy{}, fmt.Errorf("%d key records removed, want 1", tag.RowsAffected())
	}
	return l, nil
}

// writeIdentityCorpus writes one line per input: hex(input) TAB
// hex(NormalizeIdentity(input)), or "!" when Go refuses it. Inputs: every
// code point on its own between ASCII letters, each tripled, and runs of
// combining marks around the stream-safe limit of 30 non-starters.
func writeIdentityCorpus(path string) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	n := 0
	emit := func(s string) {
		out := "!"
		if norm, err := srpgroup.NormalizeIdentity(s); err == nil {
			out = hex.EncodeToString([]byte(norm))
		}
		fmt.Fprintf(w, "%s\t%s\n", hex.EncodeToString([]byte(s)), out)
		n++
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		c := string(r)
		emit("ab" + c + "cd")
		emit(c + c + c)
	}
	for _, mark := range []string{"\u0301", "\u0345", "\u0f71", "\u0334", "\u302a", "\u0308\u0301"} {
		for k := 25; k <= 40; k++ {
			emit("a" + strings.Repeat(mark, k) + "b")
			emit("\u1100\u1161" + strings.Repeat(mark, k))
		}
	}
	for _, s := range []string{"\u1100\u1161\u11a8", "\u0041\u030a", "\u212b", "\u1e9e", "\u00df", "\u0130", "\u03a3\u03c2", "ﬃ", "㎑", "\u2126", "\u1fbe", "\u0390"} {
		emit(s + "x@y.z")
		emit("  " + s + s + "\t")
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return n, f.Close()
}
