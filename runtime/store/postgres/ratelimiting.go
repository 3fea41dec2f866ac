package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// RateWindow is one window of a rate limit, as policy cluster counts it
// in Kong's ratelimiting_metrics table.
type RateWindow struct {
	Period string    // "second" ... "year"
	Start  time.Time // the window's start: the row's period_date
	// Expiry is how long the row lives after its first count (the ttl
	// column): Kong's rate-limiting expirations.
	Expiry time.Duration
	Max    int64
}

// ErrNoRateLimitingTable is the answer of HitRateWindows on a database
// without Kong's rate-limiting table.
var ErrNoRateLimitingTable = errors.New("the table ratelimiting_metrics does not exist: " +
	"enable the rate-limiting plugin (kong.conf plugins) and run 'gong migrations up'")

// hitRateWindows counts one event in every window unless one is full.
// Rows are keyed as Kong's are (identifier, period, period_date,
// service_id, route_id); a window's row is counted only while below its
// limit (the conflict's row lock makes that exact across nodes), and the
// rows returned are the windows counted. A new row expires Expiry after
// it was first counted, by the database's clock, as Kong's do.
const hitRateWindows = `
INSERT INTO ratelimiting_metrics AS m (identifier, period, period_date, service_id, route_id, value, ttl)
SELECT $1, w.period, w.start, $2, $3, 1, CURRENT_TIMESTAMP + w.expiry * interval '1 millisecond'
  FROM unnest($4::text[], $5::timestamptz[], $6::bigint[]) AS w(period, start, expiry)
ON CONFLICT (identifier, period, period_date, service_id, route_id) DO UPDATE
   SET value = m.value + 1
 WHERE m.value < (SELECT l.max FROM unnest($4::text[], $7::bigint[]) AS l(period, max) WHERE l.period = m.period)
RETURNING m.period`

// HitRateWindows counts one event under identifier, for the plugin
// instance serviceID and routeID name (Kong's columns; the zero UUID for
// none), in every window unless one is full: then nothing is counted and
// full is that window's index. Several windows are counted in one
// transaction, so a refused event is counted in none.
func (s *Store) HitRateWindows(ctx context.Context, identifier, serviceID, routeID string, windows []RateWindow) (full int, err error) {
	for i, w := range windows {
		if w.Max <= 0 {
			return i, nil
		}
	}
	periods := make([]string, len(windows))
	starts := make([]time.Time, len(windows))
	expiries := make([]int64, len(windows))
	maxes := make([]int64, len(windows))
	for i, w := range windows {
		periods[i], starts[i], expiries[i], maxes[i] = w.Period, w.Start, w.Expiry.Milliseconds(), w.Max
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return -1, err
	}
	defer release()
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	count := func(q interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}) (int, error) {
		rows, err := q.Query(ctx, hitRateWindows, identifier, serviceID, routeID, periods, starts, expiries, maxes)
		if err != nil {
			return -1, err
		}
		counted, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return -1, err
		}
		for i, p := range periods {
			if !slices.Contains(counted, p) {
				return i, nil
			}
		}
		return -1, nil
	}
	if len(windows) == 1 {
		full, err = count(s.write)
	} else {
		err = pgx.BeginFunc(ctx, s.write, func(tx pgx.Tx) error {
			if full, err = count(tx); err == nil && full >= 0 {
				return errRefused // rolls the windows counted back
			}
			return err
		})
		if errors.Is(err, errRefused) {
			err = nil
		}
	}
	if err != nil {
		return -1, rateError(err)
	}
	return full, nil
}

// errRefused ends a transaction that counted only some windows.
var errRefused = errors.New("a window is full")

func rateError(err error) error {
	if d := describe(err); d == `relation "ratelimiting_metrics" does not exist` {
		return ErrNoRateLimitingTable
	}
	return fmt.Errorf("[postgres error] %s", describe(err))
}

// SweepBatch is the most expired ratelimiting_metrics rows one statement
// of SweepRateWindows deletes, and SweepBatches the most statements one
// call runs: Kong's batch size, with a bound on the time spent.
const (
	SweepBatch   = 50000
	SweepBatches = 20
)

// SweepRateWindows deletes expired rows of ratelimiting_metrics, in
// batches, as Kong's nodes do periodically (its insert trigger deletes
// only two per statement), and returns how many it deleted.
func (s *Store) SweepRateWindows(ctx context.Context) (int64, error) {
	var total int64
	for range SweepBatches {
		qctx, cancel := s.queryCtx(ctx)
		tag, err := s.write.Exec(qctx, `DELETE FROM ratelimiting_metrics WHERE ctid IN (
			SELECT ctid FROM ratelimiting_metrics WHERE ttl < CURRENT_TIMESTAMP ORDER BY ttl LIMIT $1 FOR UPDATE SKIP LOCKED)`, SweepBatch)
		cancel()
		if err != nil {
			return total, rateError(err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < SweepBatch {
			break
		}
	}
	return total, nil
}
