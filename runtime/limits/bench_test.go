package limits

import (
	"context"
	"fmt"
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

// parallel runs op on every core with keys spread over 256 clients.
func parallel(b *testing.B, op func(ctx context.Context, client string) error) {
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if err := op(ctx, "10.0.0."+strconv.Itoa(i%256)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkHit(b *testing.B) {
	limits := []pdk.Limit{{Period: "second", Max: 1 << 40}, {Period: "minute", Max: 1 << 40}}
	benchStores(b, func(b *testing.B, s pdk.CounterStore) {
		parallel(b, func(ctx context.Context, client string) error {
			_, err := s.Hit(ctx, "plugin:"+client, limits)
			return err
		})
	})
}

func BenchmarkAcquireRelease(b *testing.B) {
	benchStores(b, func(b *testing.B, s pdk.CounterStore) {
		parallel(b, func(ctx context.Context, client string) error {
			release, ok, err := s.Acquire(ctx, "plugin:"+client, 1<<40)
			if err != nil || !ok {
				return fmt.Errorf("acquire: %v %v", ok, err)
			}
			release()
			return nil
		})
	})
}
