package limits

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/gong-proxy/gong/pdk"
)

// ErrorLogInterval is how often a failing store's errors are logged: the
// first, then at most one per interval.
const ErrorLogInterval = 10 * time.Second

// Registry holds the stores of the process: one local store, one client
// per Redis, one batching store per Redis and sync_rate, and the cluster
// store once the database is set.
type Registry struct {
	node    string
	log     func(string)
	refused func(plugin, route, reason string)
	now     func() time.Time
	local   pdk.CounterStore

	mu      sync.Mutex
	redis   []*redisEntry
	batched map[batchKey]*batched
	cluster pdk.CounterStore // nil until SetDatabase
	stop    chan struct{}    // ends the sweeper of the cluster store
	done    sync.WaitGroup
	closed  bool
}

type redisEntry struct {
	conf  RedisConfig
	roots *x509.CertPool
	store *redisStore
}

type batchKey struct {
	redis    *redisStore
	interval time.Duration
}

// NewRegistry makes the stores of a node. nodeID names it in Redis
// (with a suffix drawn at each start, so a restarted node's sessions are
// never taken for the old one's); log receives store errors, at most one
// per ErrorLogInterval and store; refused counts refused sessions.
func NewRegistry(nodeID string, log func(string), refused func(plugin, route, reason string)) *Registry {
	r := &Registry{node: nodeID + ":" + uuid.NewString()[:8], log: log, refused: refused, now: time.Now,
		batched: map[batchKey]*batched{}, stop: make(chan struct{})}
	r.local = loggingStore{newLocal(time.Now), r.logEvery("local")}
	return r
}

// SetDatabase makes policy cluster count in db, the node's database
// (database = postgres), and starts deleting its expired rows every
// SweepInterval. Without it, cluster is refused with errCluster.
func (r *Registry) SetDatabase(db Database) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.cluster != nil {
		return
	}
	onErr := r.logEvery("postgres")
	r.cluster = loggingStore{clusterStore{db: db, now: r.now}, onErr}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		sweep(db, r.stop, onErr)
	}()
}

// Counters is the pdk.Counters of a configuration: roots verify Redis
// TLS certificates (lua_ssl_trusted_certificate; nil for the system's).
func (r *Registry) Counters(roots *x509.CertPool) pdk.Counters {
	return counters{r, roots}
}

type counters struct {
	r     *Registry
	roots *x509.CertPool
}

func (c counters) Store(conf map[string]any) (pdk.CounterStore, error) {
	cfg, err := ParseConfig(conf)
	if err != nil {
		return nil, err
	}
	return c.r.store(cfg, c.roots)
}

func (c counters) Refused(plugin, route, reason string) {
	if c.r.refused != nil {
		c.r.refused(plugin, route, reason)
	}
}

// store returns the store cfg names, made on first use.
func (r *Registry) store(cfg Config, roots *x509.CertPool) (pdk.CounterStore, error) {
	if cfg.Policy == "local" {
		return r.local, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("the counter stores are closed")
	}
	if cfg.Policy == "cluster" {
		if r.cluster == nil {
			return nil, errCluster
		}
		return r.cluster, nil
	}
	var rs *redisStore
	for _, e := range r.redis {
		if e.conf == cfg.Redis && sameRoots(e.roots, roots) {
			rs = e.store
			break
		}
	}
	if rs == nil {
		name := fmt.Sprintf("redis %s:%d/%d", cfg.Redis.Host, cfg.Redis.Port, cfg.Redis.Database)
		rs = newRedisStore(cfg.Redis, roots, r.node, r.now, r.logEvery(name))
		r.redis = append(r.redis, &redisEntry{cfg.Redis, roots, rs})
	}
	if cfg.SyncRate <= 0 {
		return loggingStore{rs, rs.onErr}, nil
	}
	k := batchKey{rs, cfg.SyncRate}
	b := r.batched[k]
	if b == nil {
		b = newBatched(rs, cfg.SyncRate)
		r.batched[k] = b
	}
	return loggingStore{b, rs.onErr}, nil
}

func sameRoots(a, b *x509.CertPool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

// logEvery returns an error logger for one store that logs the first
// error and then at most one per ErrorLogInterval, with the number left
// out.
func (r *Registry) logEvery(name string) func(error) {
	var mu sync.Mutex
	var last time.Time
	var skipped int
	return func(err error) {
		mu.Lock()
		defer mu.Unlock()
		now := r.now()
		if !last.IsZero() && now.Sub(last) < ErrorLogInterval {
			skipped++
			return
		}
		msg := fmt.Sprintf("counter store %s: %v", name, err)
		if skipped > 0 {
			msg += fmt.Sprintf(" (%d more errors since the last report)", skipped)
		}
		last, skipped = now, 0
		if r.log != nil {
			r.log(msg)
		}
	}
}

// loggingStore reports its store's errors to the error log.
type loggingStore struct {
	pdk.CounterStore
	onErr func(error)
}

func (s loggingStore) Hit(ctx context.Context, key string, limits []pdk.Limit) (string, error) {
	full, err := s.CounterStore.Hit(ctx, key, limits)
	if err != nil {
		s.onErr(err)
	}
	return full, err
}

func (s loggingStore) Acquire(ctx context.Context, key string, max int64) (func(), bool, error) {
	release, ok, err := s.CounterStore.Acquire(ctx, key, max)
	if err != nil {
		s.onErr(err)
	}
	return release, ok, err
}

// Close stops the stores' background work and closes their connections;
// this node's concurrency counts leave Redis at once.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	close(r.stop)
	r.done.Wait()
	for _, b := range r.batched {
		b.close()
	}
	for _, e := range r.redis {
		e.store.close()
	}
}
