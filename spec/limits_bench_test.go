package spec

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gong-proxy/gong/internal/testsvc"
)

// The benchmarks of this file run the gong binary in its own process,
// with one route per case, so that gong's own CPU time per operation can
// be read from /proc apart from the load generator's; the cases are
// measured in alternation, b.N rounds of benchRound each (run them with
// -benchtime=5x), and compared within each round.

// benchRound is how long one case is measured in one round
// (GONG_BENCH_ROUND overrides it, a Go duration).
func benchRound() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("GONG_BENCH_ROUND")); err == nil && d > 0 {
		return d
	}
	return time.Second
}

// gongProcess is the gong binary serving a kong.conf and kong.yml.
type gongProcess struct {
	cmd *exec.Cmd
}

// startBenchGong starts the binary with confExtra and yml, listening on
// sockets (activationSocket), and waits until ready() holds.
func startBenchGong(b *testing.B, confExtra, yml string, sockets []*os.File, ready func() bool) *gongProcess {
	b.Helper()
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, "kong.yml"), yml)
	writeFile(b, filepath.Join(dir, "kong.conf"), "prefix = "+filepath.Join(dir, "prefix")+"\ndatabase = off\ndeclarative_config = "+
		filepath.Join(dir, "kong.yml")+"\nadmin_listen = off\nstatus_listen = off\nproxy_stream_access_log = off\nlog_level = error\n"+confExtra)
	cmd := exec.Command(gongBinary(b), "start", "-c", "kong.conf")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	activate(cmd, sockets...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for !ready() {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			b.Fatalf("gong exited before it was ready: %v", err)
		case <-deadline.C:
			b.Fatal("gong did not come up")
		case <-poll.C:
		}
	}
	return &gongProcess{cmd}
}

// cpu is the CPU time the process's threads have run so far (the sum of
// their schedstat run times: nanosecond resolution, unlike /proc/pid/stat's
// clock ticks).
func (p *gongProcess) cpu(b *testing.B) time.Duration {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", p.cmd.Process.Pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("schedstat of gong: %v", err)
	}
	var total int64
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that just ended
		}
		if ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64); err == nil {
			total += ns
		}
	}
	return time.Duration(total)
}

// connLoad opens new connections to addr from c goroutines for d, each
// exchanging one line ("x", answered "e: x"), and returns how many
// completed.
func connLoad(b *testing.B, addr string, c int, d time.Duration) int64 {
	var n atomic.Int64
	var failed atomic.Value
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for time.Now().Before(end) {
				if got, err := roundTrip(addr, "x"); err != nil || got != "e: x" {
					failed.Store(fmt.Sprintf("%q, %v", got, err))
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		b.Fatalf("a connection through %s failed: %s", addr, f)
	}
	return n.Load()
}

// caseCost is what one case used over every round.
type caseCost struct {
	ops    int64
	cpu    time.Duration
	wall   time.Duration
	ratios []float64 // CPU per op over the baseline's, per round
}

// alternate measures each case of names in turn, b.N rounds, starting
// each round with the next case. run plays one case for a round and calls
// measure once with the load to count (load returns its operations), so
// that what the case sets up and tears down around it is not counted. Per
// round, each case's CPU per op is compared with the first case's.
func alternate(b *testing.B, p *gongProcess, names []string, run func(name string, measure func(load func() int64))) map[string]*caseCost {
	costs := map[string]*caseCost{}
	for _, n := range names {
		costs[n] = &caseCost{}
	}
	b.ResetTimer()
	for round := range b.N {
		perOp := map[string]float64{}
		for i := range names {
			name := names[(i+round)%len(names)]
			measured := false
			run(name, func(load func() int64) {
				c0, t0 := p.cpu(b), time.Now()
				ops := load()
				cpu, wall := p.cpu(b)-c0, time.Since(t0)
				c := costs[name]
				c.ops, c.cpu, c.wall = c.ops+ops, c.cpu+cpu, c.wall+wall
				perOp[name] = float64(cpu) / float64(ops)
				measured = true
			})
			if !measured {
				b.Fatalf("case %s measured nothing", name)
			}
		}
		for _, n := range names {
			costs[n].ratios = append(costs[n].ratios, perOp[n]/perOp[names[0]])
		}
	}
	b.StopTimer()
	return costs
}

// report logs a table of the cases and reports each one's CPU per op
// and its ratio to the first case's as metrics.
func report(b *testing.B, names []string, costs map[string]*caseCost, unit string, scale float64) {
	for _, n := range names {
		if costs[n].ops == 0 {
			b.Fatalf("case %s moved nothing", n)
		}
	}
	base := costs[names[0]]
	baseRate := float64(base.ops) / base.wall.Seconds()
	lines := []string{fmt.Sprintf("%-32s %12s %14s %10s %18s", "case", unit+"/s", "cpu_us/"+unit, "vs "+names[0], "ratio per round")}
	for _, n := range names {
		c := costs[n]
		rate := float64(c.ops) / c.wall.Seconds() / scale
		perOp := float64(c.cpu.Microseconds()) / float64(c.ops) * scale
		basePerOp := float64(base.cpu.Microseconds()) / float64(base.ops) * scale
		rs := append([]float64(nil), c.ratios...)
		sort.Float64s(rs)
		lines = append(lines, fmt.Sprintf("%-32s %12.0f %14.1f %10.3f %8.3f-%-8.3f (rate %.3f)", n, rate, perOp, perOp/basePerOp,
			rs[0], rs[len(rs)-1], rate/(baseRate/scale)))
		b.ReportMetric(perOp, "cpu-us/"+unit+":"+n)
	}
	if b.N > 1 { // the table of the measured run (b.N == 1 is go test's probe)
		fmt.Printf("%s: gong's CPU per %s, %d rounds of %v per case:\n%s\n", b.Name(), unit, b.N, benchRound(), strings.Join(lines, "\n"))
	}
}

// BenchmarkLimitNewConnections: new connections (opened, one line
// echoed, closed; 8 at a time) through a route without plugins, with a
// Lua preread plugin that does nothing (what any Lua plugin costs), and
// with each limit plugin and store, limits high enough never to refuse.
func BenchmarkLimitNewConnections(b *testing.B) {
	srv := testsvc.StartRedis(b)
	echo := startEcho(b, "e")
	redis := fmt.Sprintf("policy: redis, redis: {host: 127.0.0.1, port: %d, timeout: 2000}", srv.Port)
	cases := []struct{ name, plugins string }{
		{"none", ""},
		{"noop-lua", "{name: noop}"},
		{"rate-limiting-local", "{name: rate-limiting, config: {second: 1000000000, minute: 1000000000}}"},
		{"rate-limiting-redis", "{name: rate-limiting, config: {second: 1000000000, minute: 1000000000, " + redis + "}}"},
		{"rate-limiting-redis-sync_rate", "{name: rate-limiting, config: {second: 1000000000, minute: 1000000000, sync_rate: 1, " + redis + "}}"},
		{"limit-conn-local", "{name: limit-conn, config: {max_connections: 1000000}}"},
		{"limit-conn-redis", "{name: limit-conn, config: {max_connections: 1000000, " + redis + "}}"},
	}
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: e\n    url: tcp://%s\n    routes:\n", echo)
	addrs := map[string]string{}
	var names, listen []string
	var sockets []*os.File
	for _, c := range cases {
		p, socket := activationSocket(b)
		sockets = append(sockets, socket)
		addrs[c.name] = fmt.Sprintf("127.0.0.1:%d", p)
		names = append(names, c.name)
		listen = append(listen, addrs[c.name])
		yml += fmt.Sprintf("      - name: %s\n        protocols: [tcp]\n        destinations: [{port: %d}]\n        plugins: [%s]\n", c.name, p, c.plugins)
	}
	g := startBenchGong(b, "stream_listen = "+strings.Join(listen, ", ")+"\nplugins = bundled, noop\nlua_package_path = "+fixturePath(b)+"\n",
		yml, sockets, func() bool {
			for _, a := range addrs {
				if got, err := roundTrip(a, "x"); err != nil || got != "e: x" {
					return false
				}
			}
			return true
		})
	for _, n := range names { // warm the VMs and connection pools
		connLoad(b, addrs[n], 8, 200*time.Millisecond)
	}
	costs := alternate(b, g, names, func(name string, measure func(func() int64)) {
		measure(func() int64 { return connLoad(b, addrs[name], 8, benchRound()) })
	})
	report(b, names, costs, "conn", 1)
}

// startBulkEcho is an upstream that echoes every byte.
func startBulkEcho(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return serveConns(b, ln, func(c net.Conn, _ int) {
		defer c.Close()
		io.Copy(c, c)
	})
}

// bulkLoad runs c sessions to addr for d, each writing 64 KiB and reading
// its echo back in turn, and returns the bytes echoed.
func bulkLoad(b *testing.B, addr string, c int, d time.Duration) int64 {
	var total atomic.Int64
	var wg sync.WaitGroup
	for range c {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer conn.Close()
			out, in := make([]byte, 64<<10), make([]byte, 64<<10)
			conn.SetDeadline(time.Now().Add(d + 10*time.Second))
			for end := time.Now().Add(d); time.Now().Before(end); {
				if _, err := conn.Write(out); err != nil {
					return
				}
				if _, err := io.ReadFull(conn, in); err != nil {
					return
				}
				total.Add(int64(len(in)))
			}
		})
	}
	wg.Wait()
	return total.Load()
}

// BenchmarkLimitUnlimitedBulk: 4 bulk sessions (64 KiB echoed in turn)
// on a route without plugins, alone, and while the node limits other
// sessions: 8 shaped by bandwidth-limit (256 KiB/s each way, sending as
// fast as they may), 2 held by limit-conn, and new connections refused
// by rate-limiting (about 100/s).
func BenchmarkLimitUnlimitedBulk(b *testing.B) {
	echo := startBulkEcho(b)
	var sockets []*os.File
	port := func() int {
		p, socket := activationSocket(b)
		sockets = append(sockets, socket)
		return p
	}
	free, shaped, held, refused := port(), port(), port(), port()
	route := func(name string, port int, plugin string) string {
		return fmt.Sprintf("      - name: %s\n        protocols: [tcp]\n        destinations: [{port: %d}]\n        plugins: [%s]\n", name, port, plugin)
	}
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: e\n    url: tcp://%s\n    routes:\n", echo) +
		route("free", free, "") +
		route("shaped", shaped, "{name: bandwidth-limit, config: {downstream_rate: 262144, upstream_rate: 262144, burst: 16384}}") +
		route("held", held, "{name: limit-conn, config: {max_connections: 2, limit_by: route}}") +
		route("refused", refused, "{name: rate-limiting, config: {second: 1, limit_by: route}}")
	addr := func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	listen := fmt.Sprintf("stream_listen = %s, %s, %s, %s\n", addr(free), addr(shaped), addr(held), addr(refused))
	g := startBenchGong(b, listen, yml, sockets, func() bool {
		c, err := net.Dial("tcp", addr(free))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	bulkLoad(b, addr(free), 4, 200*time.Millisecond) // warm up

	// limitedLoad runs the limited sessions until stop is closed.
	limitedLoad := func(stop chan struct{}) *sync.WaitGroup {
		var wg sync.WaitGroup
		var conns []net.Conn
		for range 8 {
			c, err := net.Dial("tcp", addr(shaped))
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			wg.Go(func() { flood(c) })
			wg.Go(func() { io.Copy(io.Discard, c) })
		}
		for range 2 {
			c, err := net.Dial("tcp", addr(held))
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		wg.Go(func() {
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if c, err := net.Dial("tcp", addr(refused)); err == nil {
						c.SetDeadline(time.Now().Add(time.Second))
						c.Read(make([]byte, 1))
						c.Close()
					}
				}
			}
		})
		wg.Go(func() {
			<-stop
			for _, c := range conns {
				c.Close()
			}
		})
		return &wg
	}
	names := []string{"alone", "with-limited-sessions"}
	bulk := func() int64 { return bulkLoad(b, addr(free), 4, benchRound()) }
	costs := alternate(b, g, names, func(name string, measure func(func() int64)) {
		if name == "alone" {
			measure(bulk)
			return
		}
		stop := make(chan struct{})
		wg := limitedLoad(stop)
		measure(bulk)
		close(stop)
		wg.Wait() // a refused-route connection let through is held up to a second: not measured
	})
	report(b, names, costs, "MB", 1e6)
}
