package postgres

import (
	"context"
	"slices"
	"time"
)

// The cluster_events channels Kong's nodes broadcast entity changes on:
// the invalidations of kong.cache and kong.core_cache, and the balancer's.
const InvalidationsChannel = "invalidations_kong_core_db_cache"

var watchedChannels = []string{"invalidations", InvalidationsChannel, "balancer:upstreams", "balancer:targets"}

// HealthChannel carries the health marks set through a node's Admin API
// (PUT /upstreams/{u}/targets/{t}/healthy or /unhealthy), which Kong
// broadcasts to every node's balancer; they change no entity, so they
// are handed to WatchOptions.OnHealth rather than rebuilding.
const HealthChannel = "balancer:post_health"

var polledChannels = append(slices.Clone(watchedChannels), HealthChannel)

// eventPage is how many events one poll reads at most, as Kong's page.
const eventPage = 1000

// lookback is how far before the previous poll's database time a poll
// looks, on top of db_update_propagation: an event's "at" is taken
// before its transaction commits, so it can become visible to a poll
// that already looked past it.
const lookback = time.Second

// WatchOptions configure Watch.
type WatchOptions struct {
	// OnChange is called, never concurrently, once per poll that found
	// events of other nodes, and after the database came back from an
	// outage (changes may have been missed).
	OnChange func()
	// OnHealth is called, after OnChange, with the data of each
	// HealthChannel event of other nodes, oldest first.
	OnHealth func(data string)
	// OnReachable is called when the database becomes unreachable
	// (false) and reachable again (true).
	OnReachable func(bool)
	// Unreachable says the database did not answer before: the first
	// poll that succeeds is its return (OnReachable(true), then
	// OnChange).
	Unreachable bool
	// MaxBackoff bounds the wait between attempts while the database is
	// unreachable; 0 means 30s.
	MaxBackoff time.Duration
}

// Watch polls cluster_events every db_update_frequency as Kong's nodes
// do, until ctx ends. Events are applied db_update_propagation after they
// were written (Kong's nbf on reads from replicas). While the database is
// unreachable it retries with exponential backoff.
func (s *Store) Watch(ctx context.Context, o WatchOptions) {
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	every := s.db.UpdateFrequency
	if every <= 0 {
		every = 5 * time.Second
	}
	seen := map[string]time.Time{} // event id -> at, for events inside the lookback
	var since time.Time
	qctx, cancel := s.queryCtx(ctx)
	if now, err := s.serverTime(qctx); err == nil {
		since = now
	}
	cancel()
	reachable, backoff := !o.Unreachable, every
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		changed, health, now, err := s.poll(ctx, since, seen)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if reachable {
				reachable = false
				if o.OnReachable != nil {
					o.OnReachable(false)
				}
			}
			backoff = min(2*backoff, o.MaxBackoff)
			timer.Reset(backoff)
			continue
		case !reachable:
			reachable, backoff, changed = true, every, true
			if o.OnReachable != nil {
				o.OnReachable(true)
			}
		}
		since = now
		if changed && o.OnChange != nil {
			o.OnChange()
		}
		if o.OnHealth != nil {
			for _, data := range health {
				o.OnHealth(data)
			}
		}
		timer.Reset(every)
	}
}

// poll reads the events written since since (minus the grace) by other
// nodes and not seen yet; it returns whether there were entity changes
// among them, the data of the health marks, and the database's time of
// the poll.
func (s *Store) poll(ctx context.Context, since time.Time, seen map[string]time.Time) (bool, []string, time.Time, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return false, nil, time.Time{}, err
	}
	defer release()
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	now, err := s.serverTime(ctx)
	if err != nil {
		return false, nil, time.Time{}, err
	}
	from := since.Add(-s.db.UpdatePropagation - lookback)
	until := now.Add(-s.db.UpdatePropagation)
	rows, err := s.read.Query(ctx, `SELECT id::text, at, channel, coalesce(data, '') FROM cluster_events
		WHERE channel = ANY($1) AND at > $2 AND at <= $3 AND node_id <> $4
		ORDER BY at LIMIT $5`, polledChannels, from, until, s.nodeID, eventPage)
	if err != nil {
		return false, nil, time.Time{}, err
	}
	defer rows.Close()
	changed := false
	var health []string
	for rows.Next() {
		var id, channel, data string
		var at time.Time
		if err := rows.Scan(&id, &at, &channel, &data); err != nil {
			return false, nil, time.Time{}, err
		}
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = at
		if channel == HealthChannel {
			health = append(health, data)
		} else {
			changed = true
		}
	}
	if err := rows.Err(); err != nil {
		return false, nil, time.Time{}, err
	}
	for id, at := range seen {
		if at.Before(from) {
			delete(seen, id)
		}
	}
	return changed, health, now, nil
}

// serverTime is the database's clock, which stamps events.
func (s *Store) serverTime(ctx context.Context) (time.Time, error) {
	var now time.Time
	err := s.read.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now)
	return now, err
}
