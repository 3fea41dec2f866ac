package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
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

// NotifyChannel is the PostgreSQL channel gong's writers NOTIFY, in the
// transaction that inserts their cluster_events rows, with their node id
// as payload; watching nodes LISTEN on it and poll at once. Writes by
// Kong or decK do not notify: they arrive with the next poll.
const NotifyChannel = "gong_cluster_events"

// WatchOptions configure Watch.
type WatchOptions struct {
	// OnChange is called, never concurrently, once per poll that found
	// events of other nodes, and after the database came back from an
	// outage (changes may have been missed). Config then applies them.
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
	// unreachable, and between reconnections of the listening
	// connection; 0 means 30s.
	MaxBackoff time.Duration
}

// Watch polls cluster_events every db_update_frequency as Kong's nodes
// do, and at once when another gong node notifies (NotifyChannel), until
// ctx ends. Events are applied db_update_propagation after they were
// written (Kong's nbf on reads from replicas). While the database is
// unreachable it retries with exponential backoff.
func (s *Store) Watch(ctx context.Context, o WatchOptions) {
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	every := s.db.UpdateFrequency
	if every <= 0 {
		every = 5 * time.Second
	}
	m := s.mirror
	qctx, cancel := s.queryCtx(ctx)
	if now, err := serverTime(qctx, s.read); err == nil {
		m.mu.Lock()
		if m.since.IsZero() {
			m.since = now
		}
		m.mu.Unlock()
	}
	cancel()
	wake := make(chan struct{}, 1)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		s.listen(ctx, wake, every, o.MaxBackoff)
	}()
	defer func() { <-listening }() // its connection is closed when Watch returns
	reachable, backoff := !o.Unreachable, every
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-wake:
			if !reachable {
				continue // the backoff's timer decides
			}
			timer.Stop()
		}
		changed, health, err := s.pollPending(ctx)
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
			s.Invalidate() // changes may have been missed
			if o.OnReachable != nil {
				o.OnReachable(true)
			}
		}
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

// listen holds a connection to the primary (NOTIFY is not replicated)
// LISTENing on NotifyChannel, and signals wake on each other node's
// notification. A lost connection is opened again after a wait that
// doubles from every (at most maxBackoff) up to maxBackoff.
func (s *Store) listen(ctx context.Context, wake chan<- struct{}, every, maxBackoff time.Duration) {
	first := min(every, maxBackoff)
	backoff := first
	for ctx.Err() == nil {
		// The polls report the database's reachability: a failure here
		// is only retried.
		s.listenOnce(ctx, wake, func() { backoff = first })
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce connects, LISTENs and forwards notifications until the
// connection fails or ctx ends; connected is called once listening.
func (s *Store) listenOnce(ctx context.Context, wake chan<- struct{}, connected func()) {
	cctx, cancel := context.WithTimeout(ctx, timeoutOr(s.db.Postgres.Timeout))
	conn, err := pgx.ConnectConfig(cctx, s.write.Config().ConnConfig.Copy())
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+pgx.Identifier{NotifyChannel}.Sanitize())
	}
	cancel()
	if conn != nil {
		defer conn.Close(context.Background())
	}
	if err != nil {
		return
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return
		}
		if n.Payload == s.nodeID {
			continue
		}
		select {
		case wake <- struct{}{}:
		default: // a poll is already due
		}
	}
}

// pollPending polls cluster_events and adds other nodes' new events to
// the mirror's pending ones; it reports whether there were any.
func (s *Store) pollPending(ctx context.Context) (changed bool, health []string, err error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return false, nil, err
	}
	defer release()
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	m := s.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	changed, err = s.poll(ctx, s.read)
	health, m.health = m.health, nil
	return changed, health, err
}

// poll reads the events written since the previous poll (minus the
// grace) by other nodes and not seen yet into the mirror's pending
// events (health marks into its health marks, which change no entity);
// it reports whether there were entity events. A full page may have left
// events out: the mirror is then stale. m.mu is held.
func (s *Store) poll(ctx context.Context, q querier) (bool, error) {
	m := s.mirror
	now, err := serverTime(ctx, q)
	if err != nil {
		return false, err
	}
	if m.seen == nil {
		m.seen = map[string]time.Time{}
	}
	from := m.since.Add(-s.db.UpdatePropagation - lookback)
	until := now.Add(-s.db.UpdatePropagation)
	rows, err := q.Query(ctx, `SELECT id::text, at, channel, coalesce(data, '') FROM cluster_events
		WHERE channel = ANY($1) AND at > $2 AND at <= $3 AND node_id <> $4
		ORDER BY at LIMIT $5`, polledChannels, from, until, s.nodeID, eventPage)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var fresh []event
	n := 0
	for rows.Next() {
		var ev event
		if err := rows.Scan(&ev.id, &ev.at, &ev.channel, &ev.data); err != nil {
			return false, err
		}
		n++
		if _, ok := m.seen[ev.id]; !ok {
			fresh = append(fresh, ev)
		}
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	changed := false
	for _, ev := range fresh {
		m.seen[ev.id] = ev.at
		if ev.channel == HealthChannel {
			m.health = append(m.health, ev.data)
		} else {
			m.pending = append(m.pending, ev)
			changed = true
		}
	}
	if n == eventPage {
		m.stale = true
	}
	m.since = now
	for id, at := range m.seen {
		if at.Before(from) {
			delete(m.seen, id)
		}
	}
	return changed || n == eventPage, nil
}

// serverTime is the database's clock, which stamps events.
func serverTime(ctx context.Context, q rowQuerier) (time.Time, error) {
	var now time.Time
	err := q.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now)
	return now, err
}
