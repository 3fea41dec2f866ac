package limits

import (
	"fmt"
	"time"
)

// periods are the windows a rate limit may have, shortest first.
var periods = []string{"second", "minute", "hour", "day", "month", "year"}

// window is the span of period that holds now: it starts on the UTC
// calendar boundary, as Kong's rate-limiting aligns its counters (a
// minute starts at second 0, a month on its first day).
func window(period string, now time.Time) (start, end time.Time, err error) {
	now = now.UTC()
	y, mo, d := now.Date()
	h, mi, s := now.Clock()
	switch period {
	case "second":
		start = time.Date(y, mo, d, h, mi, s, 0, time.UTC)
		return start, start.Add(time.Second), nil
	case "minute":
		start = time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
		return start, start.Add(time.Minute), nil
	case "hour":
		start = time.Date(y, mo, d, h, 0, 0, 0, time.UTC)
		return start, start.Add(time.Hour), nil
	case "day":
		start = time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1), nil
	case "month":
		start = time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0), nil
	case "year":
		start = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(1, 0, 0), nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("unknown period %q: expected one of second, minute, hour, day, month, year", period)
}

// expiry is how long a Redis window counter lives after its first count:
// Kong's rate-limiting expirations (a month is 30 days, a year 365).
var expiry = map[string]time.Duration{
	"second": time.Second,
	"minute": time.Minute,
	"hour":   time.Hour,
	"day":    24 * time.Hour,
	"month":  30 * 24 * time.Hour,
	"year":   365 * 24 * time.Hour,
}
