package spec

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/store/postgres"
)

// BenchmarkDatabaseTenThousandRoutes runs gong nodes on a database holding
// 10,000 TCP services with a route each. Route r0 (port portB) leads to
// service s0, whose port each change flips between two echo servers, so
// that node B's traffic shows when a change has reached it.
//
//   - start: a node starts (reads, validates and builds the 10,000 routes)
//     and stops.
//   - write: PATCH /services/s0 on node A, answered once A has written it
//     and rebuilt its own generation (sequential Admin writes).
//   - write-concurrent: the same from 8 clients on distinct services.
//   - delay-notify: from the start of a PATCH on A to the first connection
//     node B sends to the new echo (B polls every db_update_frequency = 1s
//     and at once on A's NOTIFY).
//   - delay-poll: the same for a write made as Kong's nodes make it (the
//     row and its cluster_events row, no NOTIFY): B sees it at its next
//     poll.
//
// The delays report p50 and p99 (ms) besides their mean (ns/op); run with
// -benchtime 100x for 100 writes.
func BenchmarkDatabaseTenThousandRoutes(b *testing.B) {
	pg, db := postgresDB(b)
	ctx := context.Background()
	st, err := postgres.Open(ctx, conf.Database{Strategy: "postgres", Postgres: conf.Postgres{Host: pg.Host, Port: pg.Port,
		User: pg.User, Password: pg.Password, Database: db, Timeout: time.Minute}}, "")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Bootstrap(ctx, nil); err != nil {
		b.Fatal(err)
	}
	echoes := []string{startEcho(b, "one"), startEcho(b, "two")}
	echoPort := func(i int) int { _, p := hostPort(echoes[i%2]); n, _ := strconv.Atoi(p); return n }
	portB := listenPort(b)
	if _, err := st.Modify(ctx, declarative.Options{}, func(d *declarative.Document) error {
		for i := range 10000 {
			svc := fmt.Sprintf("bbbbbbbb-0000-4000-8000-%012d", i)
			d.Set("services", map[string]any{"id": svc, "name": fmt.Sprintf("s%d", i), "url": fmt.Sprintf("tcp://127.0.0.1:%d", echoPort(0))})
			dest := map[string]any{"ip": fmt.Sprintf("10.%d.%d.1", i/256, i%256), "port": 7000}
			if i == 0 {
				dest = map[string]any{"port": portB}
			}
			d.Set("routes", map[string]any{"id": fmt.Sprintf("cccccccc-0000-4000-8000-%012d", i), "name": fmt.Sprintf("r%d", i),
				"protocols": []any{"tcp"}, "destinations": []any{dest}, "service": svc})
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	// pg_timeout is long: on a busy machine a statement over the test's 2s
	// would count as an outage and make the nodes read everything again.
	node := strings.NewReplacer("db_update_frequency = 0.2", "db_update_frequency = 1", "pg_timeout = 2000", "pg_timeout = 60000").Replace(dbConf(pg, db))

	b.Run("start", func(b *testing.B) {
		for b.Loop() {
			startGong(b, node, `_format_version: "3.0"`).stop()
		}
	})

	a, adminURL := startAdmin(b, node, `_format_version: "3.0"`)
	nodeB := startGong(b, node+fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", portB), `_format_version: "3.0"`)
	addrB := fmt.Sprintf("127.0.0.1:%d", portB)
	flips := 0
	patch := func(b *testing.B, service string, port int) {
		code, body := call(b, "PATCH", adminURL+"/services/"+service, strings.NewReader(fmt.Sprintf(`{"port": %d}`, port)), "application/json")
		if code != 200 {
			b.Fatalf("PATCH /services/%s: %d %v\nnode A's log:\n%s", service, code, body, a.errLog.String())
		}
	}
	// reachesB waits until B sends r0's connections to echo i%2.
	reachesB := func(b *testing.B, i int) {
		want := []string{"one: x", "two: x"}[i%2]
		for deadline := time.Now().Add(time.Minute); ; {
			if got, err := roundTrip(addrB, "x"); err == nil && got == want {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("node B does not answer %q after a minute; its log:\n%s", want, nodeB.errLog.String())
			}
		}
	}
	delays := func(b *testing.B, change func(i int)) {
		var took []time.Duration
		for b.Loop() {
			flips++
			start := time.Now()
			change(flips)
			reachesB(b, flips)
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(took[(len(took)*99-1)/100].Milliseconds()), "p99-ms")
	}

	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			flips++
			patch(b, "s0", echoPort(flips))
		}
	})
	b.Run("write-concurrent", func(b *testing.B) {
		var n atomic.Int64
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				patch(b, fmt.Sprintf("s%d", 1+i%9999), 9000+int(i%1000))
			}
		})
	})
	b.Run("delay-notify", func(b *testing.B) {
		delays(b, func(i int) { patch(b, "s0", echoPort(i)) })
	})
	b.Run("delay-poll", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, pg.ConnString(db))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		delays(b, func(i int) { kongWrite(b, conn, "bbbbbbbb-0000-4000-8000-000000000000", echoPort(i)) })
	})
}

// kongWrite changes a service's port as Kong's nodes do: the row and its
// invalidation event, without NOTIFY.
func kongWrite(b *testing.B, conn *pgx.Conn, service string, port int) {
	ctx := context.Background()
	_, err := conn.Exec(ctx, `UPDATE services SET port = $1, updated_at = now() WHERE id = $2`, port, service)
	if err == nil {
		_, err = conn.Exec(ctx, `INSERT INTO cluster_events (id, node_id, at, channel, data, expire_at)
			SELECT gen_random_uuid(), gen_random_uuid(), clock_timestamp() AT TIME ZONE 'UTC', $1,
				'services:' || id::text || ':::::' || ws_id::text, now() + interval '1 hour' FROM services WHERE id = $2`,
			postgres.InvalidationsChannel, service)
	}
	if err != nil {
		b.Fatal(err)
	}
}
