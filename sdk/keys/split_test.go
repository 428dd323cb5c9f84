package keys

import (
	"encoding/hex"
	"encoding/json"
	"testing"

	"zsm.dev/zsm/spec"
)

// TestSplitVectors checks the HKDF step of Derive on its own against the
// hkdf_split group of spec/vectors/kdf.json.
func TestSplitVectors(t *testing.T) {
	data, err := spec.Vectors.ReadFile("vectors/kdf.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		TestGroups []struct {
			Type  string
			Tests []struct {
				TcID                                 int `json:"tcId"`
				KPw, SecretKey, SRPSecret, UnlockKey string
				Identity                             string
			}
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range f.TestGroups {
		if g.Type != "hkdf_split" {
			continue
		}
		for _, tc := range g.Tests {
			kpw, _ := hex.DecodeString(tc.KPw)
			skb, _ := hex.DecodeString(tc.SecretKey)
			d, err := split(kpw, SecretKey(skb), tc.Identity)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(d.SRPSecret) != tc.SRPSecret || hex.EncodeToString(d.UnlockKey) != tc.UnlockKey {
				t.Errorf("tcId %d: split differs from the vector", tc.TcID)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no hkdf_split vectors")
	}
}
