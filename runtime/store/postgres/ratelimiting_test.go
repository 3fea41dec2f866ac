package postgres

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const zeroUUID = "00000000-0000-0000-0000-000000000000"

func windows(now time.Time, maxSecond, maxMinute int64) []RateWindow {
	return []RateWindow{
		{Period: "second", Start: now.Truncate(time.Second), Expiry: time.Second, Max: maxSecond},
		{Period: "minute", Start: now.Truncate(time.Minute), Expiry: time.Minute, Max: maxMinute},
	}
}

// Two nodes on one database, 20 events each at once on a limit of 15:
// exactly 15 counted, whatever the interleaving.
func TestHitRateWindowsIsExactAcrossNodes(t *testing.T) {
	ctx := context.Background()
	a := bootstrapped(t, "11111111-1111-4111-8111-111111111111")
	db := a.db.Postgres.Database
	b := openStore(t, db, "22222222-2222-4222-8222-222222222222")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var counted, refused atomic.Int64
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for range 10 {
				full, err := s.HitRateWindows(ctx, "p:10.0.0.1", zeroUUID, zeroUUID, windows(now, 100, 15)[1:])
				if err != nil {
					t.Error(err)
					return
				}
				if full < 0 {
					counted.Add(1)
				} else {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if counted.Load() != 15 || refused.Load() != 25 {
		t.Fatalf("40 events on a limit of 15: %d counted, %d refused", counted.Load(), refused.Load())
	}
	var value int
	a.write.QueryRow(ctx, "SELECT value FROM ratelimiting_metrics WHERE identifier = 'p:10.0.0.1' AND period = 'minute' AND period_date = $1", now).Scan(&value)
	if value != 15 {
		t.Errorf("the minute row holds %d, want 15", value)
	}
}

// A window refused by one limit is counted in none; the next second has
// room again, and the minute keeps counting.
func TestHitRateWindowsCountsAllOrNone(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t, "11111111-1111-4111-8111-111111111111")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	hit := func(at time.Time) int {
		full, err := s.HitRateWindows(ctx, "k", zeroUUID, zeroUUID, windows(at, 2, 3))
		if err != nil {
			t.Fatal(err)
		}
		return full
	}
	for i, want := range []int{-1, -1, 0, 0} {
		if got := hit(now); got != want {
			t.Fatalf("hit %d in the first second: full %d, want %d", i, got, want)
		}
	}
	if got := hit(now.Add(time.Second)); got != -1 {
		t.Fatalf("next second: full %d, want counted (the refused ones took nothing of the minute)", got)
	}
	if got := hit(now.Add(2 * time.Second)); got != 1 {
		t.Fatalf("fourth in the minute: full %d, want 1 (minute)", got)
	}
	var second int
	s.write.QueryRow(ctx, "SELECT value FROM ratelimiting_metrics WHERE period = 'second' AND period_date = $1", now.Add(2*time.Second)).Scan(&second)
	if second != 0 {
		t.Errorf("the minute refused the event but its second counted %d", second)
	}
}

// Expired rows go: the sweep deletes them, and a database without the
// table says what to run.
func TestSweepRateWindowsAndMissingTable(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t, "11111111-1111-4111-8111-111111111111")
	_, err := s.write.Exec(ctx, `INSERT INTO ratelimiting_metrics (identifier, period, period_date, value, ttl)
		SELECT 'old' || i, 'second', now(), 1, now() - interval '1 minute' FROM generate_series(1, 30) i`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.HitRateWindows(ctx, "live", zeroUUID, zeroUUID, windows(time.Now(), 10, 10)[1:]); err != nil {
		t.Fatal(err)
	}
	n, err := s.SweepRateWindows(ctx)
	// Kong's insert trigger deletes two per statement: the two inserts
	// took four, the sweep the rest.
	if err != nil || n != 26 {
		t.Fatalf("SweepRateWindows() = %d, %v; want the 26 expired rows the trigger left", n, err)
	}
	var left int
	s.write.QueryRow(ctx, "SELECT count(*) FROM ratelimiting_metrics").Scan(&left)
	if left != 1 {
		t.Errorf("%d rows left, want the live one", left)
	}

	bare := openStore(t, server.Database(t), "11111111-1111-4111-8111-111111111111")
	if ok, err := bare.Bootstrap(ctx, nil); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := bare.HitRateWindows(ctx, "k", zeroUUID, zeroUUID, windows(time.Now(), 1, 1)); !errors.Is(err, ErrNoRateLimitingTable) {
		t.Errorf("without the table: %v, want %v", err, ErrNoRateLimitingTable)
	}
}
