package conf

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// parseNumber reads a number the way Lua's tonumber does for kong.conf:
// decimal, exponent and hexadecimal forms.
func parseNumber(s string) (float64, bool) {
	if i, err := strconv.ParseInt(s, 0, 64); err == nil && !strings.Contains(s, "_") {
		return float64(i), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.Contains(s, "_") {
		return 0, false
	}
	return f, true
}

// parseDuration reads an nginx time: a sequence of number+unit pairs with
// units ms, s, m, h, d, w, M (30 days) and y (365 days); a bare number is
// seconds.
func parseDuration(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	units := []struct {
		name string
		d    time.Duration
	}{
		{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour},
		{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"M", 30 * 24 * time.Hour}, {"y", 365 * 24 * time.Hour},
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return 0, false
		}
		n, _ := strconv.Atoi(s[:i])
		s = s[i:]
		matched := false
		for _, u := range units {
			if strings.HasPrefix(s, u.name) {
				total += time.Duration(n) * u.d
				s = s[len(u.name):]
				matched = true
				break
			}
		}
		if !matched {
			return 0, false
		}
	}
	return total, true
}

// parseSize reads an nginx size: a number of bytes with an optional k or m
// (any case), or g as Kong's mem_cache_size also allows.
func parseSize(s string) (int64, bool) {
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, false
	}
	return n * mult, true
}

// splitArray splits a comma-separated array property, trimming items and
// dropping empty ones, as Kong does.
func splitArray(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
