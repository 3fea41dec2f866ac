package limits

import (
	"context"
	"io"
	"sync"

	"golang.org/x/time/rate"

	"github.com/gong-proxy/gong/pdk"
)

// DefaultBurst is the burst of a bandwidth limit that names none: 64 KiB,
// a few relay chunks.
const DefaultBurst = 64 << 10

// Meter paces one direction of one session: each read waits until every
// bucket it draws from (the session's own rate, the key's aggregate rate
// on the node) has the bytes. It delays reads and never drops bytes.
type Meter struct {
	buckets []*rate.Limiter
	chunk   int // the most bytes one read may take: the smallest burst
}

// Reader returns r paced by m; a nil m returns r unchanged, so an
// unlimited direction keeps its fast path (splice). Reads end early with
// ctx's error when ctx ends while waiting.
func (m *Meter) Reader(ctx context.Context, r io.Reader) io.Reader {
	if m == nil {
		return r
	}
	return &meteredReader{ctx: ctx, r: r, m: m}
}

// wait blocks until n bytes may pass every bucket.
func (m *Meter) wait(ctx context.Context, n int) error {
	for _, b := range m.buckets {
		if err := b.WaitN(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

type meteredReader struct {
	ctx context.Context
	r   io.Reader
	m   *Meter
}

// Read reads at most one chunk, then holds it until its bytes are due, so
// the sender is slowed by the socket's own backpressure.
func (mr *meteredReader) Read(p []byte) (int, error) {
	if len(p) > mr.m.chunk {
		p = p[:mr.m.chunk]
	}
	n, err := mr.r.Read(p)
	if n > 0 {
		if werr := mr.m.wait(mr.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// Shaper hands out the meters of sessions: aggregate buckets are shared
// by the sessions of one key on the node for as long as one of them
// lives.
type Shaper struct {
	mu   sync.Mutex
	aggs map[string]*aggregate
}

type aggregate struct {
	bucket *rate.Limiter
	users  int
}

// NewShaper makes an empty shaper; a process needs one.
func NewShaper() *Shaper { return &Shaper{aggs: map[string]*aggregate{}} }

// Session returns the meters of one session as s asks: down paces what
// is read from the upstream (to the client), with the key's aggregate
// rate, up what is read from the client. Either is nil when unlimited. release ends the session's share
// of its aggregate bucket; call it once when the session ends.
func (sh *Shaper) Session(s pdk.Shaping) (down, up *Meter, release func()) {
	burst := int(s.Burst)
	if burst <= 0 {
		burst = DefaultBurst
	}
	var agg *rate.Limiter
	release = func() {}
	if s.AggregateRate > 0 {
		agg = sh.acquire(s.Key, s.AggregateRate, burst)
		var once sync.Once
		release = func() { once.Do(func() { sh.release(s.Key) }) }
	}
	meter := func(r int64, shared *rate.Limiter) *Meter {
		var bs []*rate.Limiter
		if r > 0 {
			bs = append(bs, rate.NewLimiter(rate.Limit(r), burst))
		}
		if shared != nil {
			bs = append(bs, shared)
		}
		if len(bs) == 0 {
			return nil
		}
		chunk := burst
		for _, b := range bs {
			chunk = min(chunk, b.Burst())
		}
		return &Meter{buckets: bs, chunk: chunk}
	}
	return meter(s.DownstreamRate, agg), meter(s.UpstreamRate, nil), release
}

func (sh *Shaper) acquire(key string, r int64, burst int) *rate.Limiter {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.aggs[key]
	if a == nil {
		a = &aggregate{bucket: rate.NewLimiter(rate.Limit(r), burst)}
		sh.aggs[key] = a
	}
	a.users++
	return a.bucket
}

func (sh *Shaper) release(key string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if a := sh.aggs[key]; a != nil {
		if a.users--; a.users <= 0 {
			delete(sh.aggs, key)
		}
	}
}
