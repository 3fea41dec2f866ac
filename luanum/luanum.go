// Package luanum writes numbers as LuaJIT's tostring does, for the Lua
// runtime and for the places outside it that must print a number the way
// a Kong plugin would see it (schema errors, declarative values).
package luanum

import (
	"math"
	"strconv"
)

// Format renders n as LuaJIT's tostring does ("%.14g"): 1e+15, 0.1 for
// 0.1+0.2-0.2, inf, -inf, nan, -nan, -0.
func Format(n float64) string {
	switch {
	case math.IsNaN(n):
		if math.Signbit(n) {
			return "-nan"
		}
		return "nan"
	case math.IsInf(n, 1):
		return "inf"
	case math.IsInf(n, -1):
		return "-inf"
	}
	return strconv.FormatFloat(n, 'g', 14, 64)
}
