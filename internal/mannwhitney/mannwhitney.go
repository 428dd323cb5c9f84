// Package mannwhitney compares two samples with the Mann–Whitney U test
// (Wilcoxon rank-sum): are values of one sample systematically larger than
// those of the other? It makes no assumption about their distribution,
// which suits response times, with their long tails. zsm uses it to check
// that a client cannot tell by timing whether an identity is registered.
package mannwhitney

import (
	"math"
	"slices"
	"sort"
)

// Result of comparing samples a and b.
type Result struct {
	U float64 // U of sample a: how often a value of a exceeds one of b (ties count half)
	Z float64 // U standardized, with continuity and tie corrections; negative when a tends lower
	P float64 // two-sided p-value from the normal approximation (good from about 20 values per sample)
}

// Test runs the two-sided test. Both samples must be non-empty.
func Test(a, b []float64) Result {
	type obs struct {
		v    float64
		inA  bool
		rank float64
	}
	all := make([]obs, 0, len(a)+len(b))
	for _, v := range a {
		all = append(all, obs{v: v, inA: true})
	}
	for _, v := range b {
		all = append(all, obs{v: v})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Ranks from 1; tied values share the mean of their ranks.
	var tieTerm float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mean := float64(i+1+j) / 2
		for k := i; k < j; k++ {
			all[k].rank = mean
		}
		if t := float64(j - i); t > 1 {
			tieTerm += t*t*t - t
		}
		i = j
	}
	var ra float64
	for _, o := range all {
		if o.inA {
			ra += o.rank
		}
	}
	n1, n2 := float64(len(a)), float64(len(b))
	n := n1 + n2
	u := ra - n1*(n1+1)/2
	mu := n1 * n2 / 2
	sigma := math.Sqrt(n1 * n2 / 12 * ((n + 1) - tieTerm/(n*(n-1))))
	if sigma == 0 {
		return Result{U: u, Z: 0, P: 1}
	}
	d := u - mu
	switch {
	case d > 0:
		d = math.Max(0, d-0.5)
	case d < 0:
		d = math.Min(0, d+0.5)
	}
	z := d / sigma
	return Result{U: u, Z: z, P: math.Erfc(math.Abs(z) / math.Sqrt2)}
}

// Median of xs (the mean of the middle two for an even count).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
