package luanum

import (
	"math"
	"testing"
)

// The texts LuaJIT's tostring gives for these numbers.
func TestFormat(t *testing.T) {
	for _, c := range []struct {
		n    float64
		want string
	}{
		{1, "1"},
		{-2.5, "-2.5"},
		{1e15, "1e+15"},
		{1e14, "1e+14"},
		{123456789012345, "1.2345678901234e+14"},
		{0.1 + 0.2 - 0.2, "0.1"},
		{0.1 + 0.2, "0.3"},
		{math.Copysign(0, -1), "-0"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
		{math.NaN(), "nan"},
		{math.Copysign(math.NaN(), -1), "-nan"},
	} {
		if got := Format(c.n); got != c.want {
			t.Errorf("Format(%v) = %q; want %q", c.n, got, c.want)
		}
	}
}
