package mannwhitney

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestKnownValues(t *testing.T) {
	// Completely separated samples of five: U = 0, z = (0.5-12.5)/sqrt(25·11/12).
	r := Test([]float64{1, 2, 3, 4, 5}, []float64{6, 7, 8, 9, 10})
	if r.U != 0 || math.Abs(r.Z+2.5067) > 1e-4 || math.Abs(r.P-0.012186) > 1e-5 {
		t.Fatalf("separated samples: %+v", r)
	}
	// With ties (worked by hand): ranks 1, 3, 3, 6 for a, U = 3,
	// sigma² = 16/12·(9 − 48/56), z = (3.5 − 8)/sigma.
	r = Test([]float64{1, 2, 2, 3}, []float64{2, 3, 3, 4})
	if r.U != 3 || math.Abs(r.Z+1.36570) > 1e-4 || math.Abs(r.P-0.17203) > 1e-4 {
		t.Fatalf("tied samples: %+v", r)
	}
	// Symmetric, and identical samples give p = 1.
	if a, b := Test([]float64{1, 5, 9}, []float64{2, 3, 4, 8}), Test([]float64{2, 3, 4, 8}, []float64{1, 5, 9}); a.P != b.P || a.Z != -b.Z {
		t.Fatalf("not symmetric: %+v %+v", a, b)
	}
	if r := Test([]float64{3, 3, 3}, []float64{3, 3}); r.P != 1 {
		t.Fatalf("all equal: %+v", r)
	}
	if m := Median([]float64{5, 1, 3, 2}); m != 2.5 {
		t.Fatalf("median %v", m)
	}
}

// Under the null hypothesis the p-value is about uniform: samples drawn
// from one distribution are "significant at 5 %" about 5 % of the time; a
// shift is found nearly always.
func TestCalibration(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func(n int, shift float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = rng.ExpFloat64() + shift // long-tailed, like response times
		}
		return out
	}
	const trials = 2000
	null, found := 0, 0
	for i := 0; i < trials; i++ {
		if Test(draw(100, 0), draw(100, 0)).P < 0.05 {
			null++
		}
		if Test(draw(100, 0), draw(100, 0.5)).P < 0.05 {
			found++
		}
	}
	if rate := float64(null) / trials; rate < 0.035 || rate > 0.065 {
		t.Errorf("false positives at 5 %%: %.3f", rate)
	}
	if rate := float64(found) / trials; rate < 0.95 {
		t.Errorf("a shift of half the scale found only %.3f of the time", rate)
	}
}
