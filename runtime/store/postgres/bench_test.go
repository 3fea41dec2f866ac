package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// BenchmarkLoad10000Routes is the database part of a start, and of every
// rebuild after a change: reading and validating 10,000 services with a
// route each.
func BenchmarkLoad10000Routes(b *testing.B) {
	ctx := context.Background()
	s := bootstrapped(b, "11111111-1111-4111-8111-111111111111")
	if _, err := s.Modify(ctx, declarative.Options{}, func(d *declarative.Document) error {
		for i := range 10000 {
			sid := fmt.Sprintf("bbbbbbbb-0000-4000-8000-%012d", i)
			d.Set("services", map[string]any{"id": sid, "name": fmt.Sprintf("s%d", i), "url": "tcp://127.0.0.1:9000"})
			d.Set("routes", map[string]any{"id": fmt.Sprintf("cccccccc-0000-4000-8000-%012d", i), "protocols": []any{"tcp"},
				"destinations": []any{map[string]any{"port": 10000 + i%50000}}, "service": sid})
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cfg, err := s.Load(ctx, declarative.Options{})
		if err != nil || len(cfg.Routes) != 10000 {
			b.Fatalf("Load: %v", err)
		}
	}
}
