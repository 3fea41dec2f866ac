package limits

import (
	"context"
	"errors"
	"time"

	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/store/postgres"
)

// Database is the PostgreSQL database of database mode as policy cluster
// uses it: Kong's ratelimiting_metrics table (runtime/store/postgres
// implements it).
type Database interface {
	HitRateWindows(ctx context.Context, identifier, serviceID, routeID string, windows []postgres.RateWindow) (full int, err error)
	SweepRateWindows(ctx context.Context) (int64, error)
}

// SweepInterval is how often a node with cluster counters deletes the
// expired rows of ratelimiting_metrics (at most
// postgres.SweepBatch*postgres.SweepBatches per run).
const SweepInterval = time.Minute

// emptyUUID is Kong's service_id and route_id of a row no service or
// route scopes.
const emptyUUID = "00000000-0000-0000-0000-000000000000"

// errClusterConcurrency is the answer of a cluster store to Acquire:
// concurrency counts need per-node liveness, which Redis's key expiry
// gives and PostgreSQL rows would only give with a write per session
// start and end plus a heartbeat.
var errClusterConcurrency = errors.New("policy 'cluster' keeps rate windows only, not sessions in progress; use 'redis' to share concurrency counts across nodes")

// clusterStore counts rate windows in the database, one round trip per
// event (a transaction with several windows), exact across nodes. The
// row's identifier is the store key (the plugin instance's id and the
// limit_by value), so its service_id and route_id are Kong's zero UUID.
type clusterStore struct {
	db  Database
	now func() time.Time
}

// Hit implements pdk.CounterStore.
func (c clusterStore) Hit(ctx context.Context, key string, limits []pdk.Limit) (string, error) {
	now := c.now()
	windows := make([]postgres.RateWindow, len(limits))
	for i, l := range limits {
		start, _, err := window(l.Period, now)
		if err != nil {
			return "", err
		}
		windows[i] = postgres.RateWindow{Period: l.Period, Start: start, Expiry: expiry[l.Period], Max: l.Max}
	}
	full, err := c.db.HitRateWindows(ctx, key, emptyUUID, emptyUUID, windows)
	if err != nil || full < 0 {
		return "", err
	}
	return limits[full].Period, nil
}

// Acquire implements pdk.CounterStore: always an error.
func (clusterStore) Acquire(context.Context, string, int64) (func(), bool, error) {
	return nil, false, errClusterConcurrency
}

// sweep deletes expired rows every SweepInterval until stop is closed.
func sweep(db Database, stop <-chan struct{}, onErr func(error)) {
	t := time.NewTicker(SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if _, err := db.SweepRateWindows(context.Background()); err != nil {
				onErr(err)
			}
		}
	}
}
