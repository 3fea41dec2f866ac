package limits

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gong-proxy/gong/pdk"
)

// NodeTTL is how long a node's concurrency counts outlive its last
// heartbeat in Redis: a node that dies stops counting at most NodeTTL
// after it died. Heartbeats run every NodeTTL/3.
const NodeTTL = 6 * time.Second

// redisStore is a store in one Redis database, shared by every node that
// names it. Rate windows use Kong's key shape
// "ratelimit:<key>:<window start in ms>:<period>"; concurrency keys are
// hashes "gong:limit-conn:<key>" of node instance -> sessions, counted
// only while "gong:node:<instance>" (refreshed by the heartbeat) lives.
type redisStore struct {
	client *redis.Client
	pipe   *pipeliner // the scripts of sessions' counts
	node   string     // this process's instance, unique per start
	now    func() time.Time
	onErr  func(error)

	mu      sync.Mutex
	held    map[string]int64 // this node's sessions per concurrency key
	beating bool
	stop    chan struct{}
	done    sync.WaitGroup
}

// quietClient keeps go-redis's own logger off the process's stderr: the
// stores report their errors to the error log, at most once per
// ErrorLogInterval.
var quietClient sync.Once

type discardLog struct{}

func (discardLog) Printf(context.Context, string, ...any) {}

func newRedisStore(c RedisConfig, roots *x509.CertPool, node string, now func() time.Time, onErr func(error)) *redisStore {
	quietClient.Do(func() { redis.SetLogger(discardLog{}) })
	opts := &redis.Options{
		Addr:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Username: c.Username, Password: c.Password, DB: c.Database,
		DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
		MaxRetries: 1, DialerRetries: 1,
		// Redis before 7.2 has no CLIENT SETINFO.
		DisableIdentity: true,
	}
	if c.SSL {
		name := c.ServerName
		if name == "" {
			name = c.Host
		}
		opts.TLSConfig = &tls.Config{ServerName: name, RootCAs: roots, InsecureSkipVerify: !c.SSLVerify, MinVersion: tls.VersionTLS12}
	}
	client := redis.NewClient(opts)
	return &redisStore{client: client, pipe: newPipeliner(client), node: node, now: now, onErr: onErr,
		held: map[string]int64{}, stop: make(chan struct{})}
}

// hitScript counts one event in every window KEYS names unless one is
// full (ARGV[i] is its limit; ARGV[n+i] its expiry in seconds); it
// returns the index of the full window, 0 when it counted.
var hitScript = redis.NewScript(`
local n = #KEYS
for i = 1, n do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0')
  if c >= tonumber(ARGV[i]) then return i end
end
for i = 1, n do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[n + i]) end
end
return 0`)

// windowKeys returns the Redis keys of key's current windows and the
// script's arguments (limits, then expiries).
func windowKeys(key string, limits []pdk.Limit, now time.Time) ([]string, []any, error) {
	keys := make([]string, len(limits))
	args := make([]any, 2*len(limits))
	for i, l := range limits {
		start, _, err := window(l.Period, now)
		if err != nil {
			return nil, nil, err
		}
		keys[i] = "ratelimit:" + key + ":" + strconv.FormatInt(start.UnixMilli(), 10) + ":" + l.Period
		args[i] = l.Max
		args[len(limits)+i] = int64(expiry[l.Period] / time.Second)
	}
	return keys, args, nil
}

// Hit implements pdk.CounterStore: one atomic script per event.
func (r *redisStore) Hit(ctx context.Context, key string, limits []pdk.Limit) (string, error) {
	keys, args, err := windowKeys(key, limits, r.now())
	if err != nil {
		return "", err
	}
	i, err := r.pipe.run(ctx, hitScript, keys, args...).Int()
	if err != nil || i == 0 {
		return "", err
	}
	return limits[i-1].Period, nil
}

// acquireScript counts this node's session in hash KEYS[1] unless the
// live nodes' sessions reach ARGV[2]; entries of nodes whose heartbeat
// key (ARGV[3] .. node) expired are dropped.
var acquireScript = redis.NewScript(`
local sum = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local node = all[i]
  if node == ARGV[1] or redis.call('EXISTS', ARGV[3] .. node) == 1 then
    sum = sum + tonumber(all[i + 1])
  else
    redis.call('HDEL', KEYS[1], node)
  end
end
if sum >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SET', ARGV[3] .. ARGV[1], '1', 'PX', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`)

// releaseScript takes this node's session back from hash KEYS[1].
var releaseScript = redis.NewScript(`
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`)

const (
	nodePrefix = "gong:node:"
	connPrefix = "gong:limit-conn:"
	// connKeyTTL drops a concurrency hash nobody touched for a day.
	connKeyTTL = 24 * time.Hour
)

// Acquire implements pdk.CounterStore. The node's own count is also kept
// here, and its heartbeat rewrites it to Redis, so a lost release or a
// restarted Redis is corrected within NodeTTL/3.
func (r *redisStore) Acquire(ctx context.Context, key string, max int64) (func(), bool, error) {
	r.startHeartbeat()
	ok, err := r.pipe.run(ctx, acquireScript, []string{connPrefix + key},
		r.node, max, nodePrefix, NodeTTL.Milliseconds(), connKeyTTL.Milliseconds()).Bool()
	if err != nil || !ok {
		return nil, false, err
	}
	r.mu.Lock()
	r.held[key]++
	r.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { r.release(key) }) }, true, nil
}

func (r *redisStore) release(key string) {
	r.mu.Lock()
	r.held[key]--
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.client.Options().ReadTimeout)
	defer cancel()
	if err := r.pipe.run(ctx, releaseScript, []string{connPrefix + key}, r.node).Err(); err != nil {
		r.onErr(err)
	}
}

func (r *redisStore) startHeartbeat() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.beating {
		return
	}
	r.beating = true
	r.done.Add(1)
	go r.heartbeat()
}

// heartbeat keeps this node alive in Redis and rewrites its counts.
func (r *redisStore) heartbeat() {
	defer r.done.Done()
	t := time.NewTicker(NodeTTL / 3)
	defer t.Stop()
	for {
		if err := r.beat(); err != nil {
			r.onErr(err)
		}
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

func (r *redisStore) beat() error {
	ctx, cancel := context.WithTimeout(context.Background(), NodeTTL/3)
	defer cancel()
	p := r.client.Pipeline()
	p.Set(ctx, nodePrefix+r.node, "1", NodeTTL)
	r.mu.Lock()
	for key, n := range r.held {
		if n > 0 {
			p.HSet(ctx, connPrefix+key, r.node, n)
		} else {
			p.HDel(ctx, connPrefix+key, r.node)
			delete(r.held, key)
		}
	}
	r.mu.Unlock()
	_, err := p.Exec(ctx)
	return err
}

// close stops the heartbeat and takes this node out of every count now,
// rather than NodeTTL later.
func (r *redisStore) close() {
	close(r.stop)
	r.done.Wait()
	r.pipe.close()
	ctx, cancel := context.WithTimeout(context.Background(), r.client.Options().ReadTimeout)
	defer cancel()
	r.client.Del(ctx, nodePrefix+r.node)
	r.client.Close()
}
