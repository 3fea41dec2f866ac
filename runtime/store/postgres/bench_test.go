package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// BenchmarkTenThousandRoutes measures, on a database with 10,000
// services with a route each: reading them (document), reading and
// validating them (load: the database part of a start and of every
// rebuild after a change), and one Admin-style write changing one route
// (write: read, validate everything, write one row and its events).
func BenchmarkTenThousandRoutes(b *testing.B) {
	ctx := context.Background()
	s := bootstrapped(b, "11111111-1111-4111-8111-111111111111")
	route := func(i, port int) map[string]any {
		return map[string]any{"id": fmt.Sprintf("cccccccc-0000-4000-8000-%012d", i), "protocols": []any{"tcp"},
			"destinations": []any{map[string]any{"port": port}}, "service": fmt.Sprintf("bbbbbbbb-0000-4000-8000-%012d", i)}
	}
	if _, err := s.Modify(ctx, declarative.Options{}, func(d *declarative.Document) error {
		for i := range 10000 {
			d.Set("services", map[string]any{"id": fmt.Sprintf("bbbbbbbb-0000-4000-8000-%012d", i), "name": fmt.Sprintf("s%d", i), "url": "tcp://127.0.0.1:9000"})
			d.Set("routes", route(i, 10000+i))
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.Run("document", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Document(ctx, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			cfg, err := s.Load(ctx, declarative.Options{})
			if err != nil || len(cfg.Routes) != 10000 {
				b.Fatalf("Load: %v", err)
			}
		}
	})
	b.Run("write", func(b *testing.B) {
		n := 0
		for b.Loop() {
			n++
			if _, err := s.Modify(ctx, declarative.Options{}, func(d *declarative.Document) error {
				d.Set("routes", route(0, 60000+n%5000))
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriteAmong250Services is one Admin-style creation of a service
// on a database holding 250 (the scale of spec's concurrent-writes test):
// read everything, validate everything, write one row and its events.
func BenchmarkWriteAmong250Services(b *testing.B) {
	ctx := context.Background()
	s := bootstrapped(b, "11111111-1111-4111-8111-111111111111")
	if _, err := s.Modify(ctx, declarative.Options{}, func(d *declarative.Document) error {
		for i := range 250 {
			d.Set("services", map[string]any{"id": fmt.Sprintf("bbbbbbbb-0000-4000-8000-%012d", i), "name": fmt.Sprintf("s%d", i), "url": "tcp://127.0.0.1:9000"})
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		n++
		if _, err := s.Modify(ctx, declarative.Options{}, func(d *declarative.Document) error {
			d.Set("services", map[string]any{"id": fmt.Sprintf("bbbbbbbb-0000-4000-8000-%012d", 0), "name": "s0", "url": fmt.Sprintf("tcp://127.0.0.1:%d", 1000+n%5000)})
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
