package limits

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gong-proxy/gong/internal/testsvc"
	"github.com/gong-proxy/gong/pdk"
)

// benchStores runs f against the local store and Redis, without and with
// sync_rate: the cost per connection of rate-limiting and limit-conn.
func benchStores(b *testing.B, f func(b *testing.B, s pdk.CounterStore)) {
	b.Run("local", func(b *testing.B) { f(b, newLocal(time.Now)) })
	srv := testsvc.StartRedis(b)
	for _, sync := range []float64{-1, 1} {
		name := "redis"
		if sync > 0 {
			name = "redis-sync_rate"
		}
		b.Run(name, func(b *testing.B) {
			conf := redisConf(srv.Port, nil)
			conf["sync_rate"] = sync
			r := NewRegistry("bench", nil, nil)
			defer r.Close()
			s, err := r.Counters(nil).Store(conf)
			if err != nil {
				b.Fatal(err)
			}
			f(b, s)
		})
	}
}

func BenchmarkHit(b *testing.B) {
	limits := []pdk.Limit{{Period: "second", Max: 1 << 40}, {Period: "minute", Max: 1 << 40}}
	benchStores(b, func(b *testing.B, s pdk.CounterStore) {
		ctx := context.Background()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if _, err := s.Hit(ctx, "route:service:10.0.0."+strconv.Itoa(i%256), limits); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkAcquireRelease(b *testing.B) {
	benchStores(b, func(b *testing.B, s pdk.CounterStore) {
		ctx := context.Background()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				release, ok, err := s.Acquire(ctx, "10.0.0."+strconv.Itoa(i%256), 1<<40)
				if err != nil || !ok {
					b.Fatal(ok, err)
				}
				release()
			}
		})
	})
}
