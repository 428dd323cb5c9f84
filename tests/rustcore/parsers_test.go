package rustcore

import (
	"bufio"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

// The parser corpus: inputs for every strict parser the two clients share,
// each with what the Go SDK makes of it, for the Rust core's
// parsers_agree_with_go to compare with its own answer. The inputs are the
// spec/vectors inputs and, from each, mutants made by a fixed-seed PRNG
// (bit flips, deleted, inserted and repeated bytes, truncation), so the
// corpus is the same on every run and reaches the edges of each grammar
// that the vectors do not name.

// mutantsPerSeed is how many mutants each vector input yields.
const mutantsPerSeed = 40

// corpusLine is one input: the parser, the input, what Go answered, and
// for envelopes the key and context the input is opened with.
type corpusLine struct {
	kind, input, outcome, extra string
}

// interesting are bytes a mutation inserts: JSON structure, escapes,
// digits, padding, bytes that are not UTF-8.
var interesting = []byte(`{}[]",:\0159-+.eE=/_ ` + "\x00\x01\x7f\x80\xc3\xe2\xed\xff\t\n")

func mutate(r *rand.Rand, in []byte) []byte {
	b := append([]byte(nil), in...)
	for n := 1 + r.IntN(3); n > 0; n-- {
		switch op := r.IntN(6); {
		case len(b) == 0 || op == 0: // insert
			i := r.IntN(len(b) + 1)
			b = append(b[:i], append([]byte{interesting[r.IntN(len(interesting))]}, b[i:]...)...)
		case op == 1: // flip a bit
			b[r.IntN(len(b))] ^= 1 << r.IntN(8)
		case op == 2: // delete
			i := r.IntN(len(b))
			b = append(b[:i], b[i+1:]...)
		case op == 3: // truncate
			b = b[:r.IntN(len(b))]
		case op == 4: // repeat a chunk
			i := r.IntN(len(b))
			j := i + r.IntN(min(16, len(b)-i)+1)
			b = append(b[:j], append(append([]byte(nil), b[i:j]...), b[j:]...)...)
		default: // replace a byte
			b[r.IntN(len(b))] = interesting[r.IntN(len(interesting))]
		}
	}
	return b
}

// vectorFile reads spec/vectors/name as generic JSON.
func vectorFile(name string) (map[string]any, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "spec", "vectors", name))
	if err != nil {
		return nil, err
	}
	var f map[string]any
	return f, json.Unmarshal(data, &f)
}

// eachTest calls f with every group and test of a vector file.
func eachTest(f map[string]any, fn func(g, tc map[string]any)) {
	for _, g := range f["testGroups"].([]any) {
		gm := g.(map[string]any)
		for _, tc := range gm["tests"].([]any) {
			fn(gm, tc.(map[string]any))
		}
	}
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func unhex(m map[string]any, k string) []byte {
	b, _ := hex.DecodeString(str(m, k))
	return b
}

func okOrErr(out []byte, err error) string {
	if err != nil {
		return "err"
	}
	return "ok:" + hex.EncodeToString(out)
}

// outcome is what the Go SDK answers for one input of a parser.
func outcome(kind string, in []byte, extra string) string {
	switch kind {
	case "bundle":
		b, err := keys.ParseBundle(in)
		if err != nil {
			return "err"
		}
		j, err := json.Marshal(b)
		return okOrErr(j, err)
	case "pins":
		s, err := trust.ParsePinSet(in)
		if err != nil {
			return "err"
		}
		return okOrErr(s.Marshal())
	case "memberlog":
		e, err := memberlog.Parse(in)
		if err != nil {
			return "err"
		}
		return okOrErr(e.Marshal())
	case "manifest":
		m, err := manifest.Parse(in)
		if err != nil {
			return "err"
		}
		return okOrErr(m.Marshal())
	case "qr":
		fp, err := trust.ParseQR(string(in))
		return okOrErr(fp[:], err)
	case "secretkey":
		k, err := keys.ParseSecretKey(string(in))
		if err != nil {
			return "err"
		}
		return "ok:" + hex.EncodeToString([]byte(k.Text()))
	case "envelope":
		key, ctx := envelopeExtra(extra)
		pt, err := envelope.Open(key, ctx, in)
		for class, e := range map[string]error{"malformed": envelope.ErrMalformed, "unsupported_version": envelope.ErrUnsupportedVersion,
			"wrong_type": envelope.ErrWrongType, "tampered": envelope.ErrTampered} {
			if errors.Is(err, e) {
				return "err:" + class
			}
		}
		return okOrErr(pt, err)
	}
	panic("unknown parser " + kind)
}

// envelopeExtra decodes "key,type,vault,object,revision".
func envelopeExtra(extra string) ([]byte, envelope.Context) {
	p := strings.Split(extra, ",")
	key, _ := hex.DecodeString(p[0])
	t, _ := strconv.Atoi(p[1])
	rev, _ := strconv.ParseUint(p[4], 10, 64)
	return key, envelope.Context{Type: envelope.Type(t), VaultID: uuid.MustParse(p[2]), ObjectID: uuid.MustParse(p[3]), Revision: rev}
}

// parserSeeds collects the inputs of every parser from spec/vectors.
func parserSeeds() ([]corpusLine, error) {
	var seeds []corpusLine
	add := func(kind string, in []byte, extra string) {
		seeds = append(seeds, corpusLine{kind: kind, input: string(in), extra: extra})
	}
	files := map[string]func(g, tc map[string]any){
		"bundle.json": func(_, tc map[string]any) { add("bundle", []byte(str(tc, "bundle")), "") },
		"pins.json": func(_, tc map[string]any) {
			for _, k := range []string{"pins", "remote", "canonical"} {
				if s := str(tc, k); s != "" {
					add("pins", []byte(s), "")
				}
			}
		},
		"vault_log.json": func(_, tc map[string]any) {
			if m := unhex(tc, "message"); m != nil {
				add("memberlog", m, "")
			}
			if e, ok := tc["entry"].(map[string]any); ok {
				add("memberlog", unhex(e, "messageHex"), "")
			}
			rows, _ := tc["rows"].([]any)
			for _, r := range rows[:min(len(rows), 2)] {
				m, _ := base64.StdEncoding.DecodeString(str(r.(map[string]any), "message"))
				add("memberlog", m, "")
			}
		},
		"manifest.json": func(_, tc map[string]any) {
			if m := unhex(tc, "message"); m != nil {
				add("manifest", m, "")
			}
			if r, ok := tc["row"].(map[string]any); ok {
				m, _ := base64.StdEncoding.DecodeString(str(r, "message"))
				add("manifest", m, "")
			}
		},
		"fingerprint.json": func(_, tc map[string]any) {
			if q := str(tc, "qr"); q != "" {
				add("qr", []byte(q), "")
			}
		},
		"secret_key.json": func(_, tc map[string]any) { add("secretkey", []byte(str(tc, "text")), "") },
		"envelope.json": func(_, tc map[string]any) {
			ad := tc["adInput"].(map[string]any)
			extra := fmt.Sprintf("%s,%v,%s,%s,%s", str(tc, "key"), ad["type"], str(ad, "vaultId"), str(ad, "objectId"), str(ad, "revision"))
			add("envelope", unhex(tc, "envelope"), extra)
		},
	}
	for name, fn := range files {
		f, err := vectorFile(name)
		if err != nil {
			return nil, err
		}
		eachTest(f, fn)
	}
	return seeds, nil
}

// writeParserCorpus writes one line per input: kind TAB hex(input) TAB
// Go's outcome TAB extra, and returns how many.
func writeParserCorpus(path string) (int, error) {
	seeds, err := parserSeeds()
	if err != nil {
		return 0, err
	}
	// Map iteration above is random: sort for a stable corpus.
	slices.SortFunc(seeds, func(a, b corpusLine) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.input, b.input), cmp.Compare(a.extra, b.extra))
	})
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(12, 2026))
	n := 0
	emit := func(kind string, in []byte, extra string) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", kind, hex.EncodeToString(in), outcome(kind, in, extra), extra)
		n++
	}
	for _, s := range seeds {
		emit(s.kind, []byte(s.input), s.extra)
		for range mutantsPerSeed {
			emit(s.kind, mutate(r, []byte(s.input)), s.extra)
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return n, f.Close()
}
