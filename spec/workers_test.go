package spec

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// TestWorkerZeroSingleton: each Lua VM is a worker with its own
// ngx.worker.id, and the timer worker 0 starts in init_worker runs once
// per process however many VMs 50 concurrent connections make.
func TestWorkerZeroSingleton(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	pWork, pReport := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: workers, config: {hold: 0.3}}]
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: workers, config: {report: true}}]
`, echo, pWork, pReport)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, workers\nlua_package_path = %s\nnginx_stream_lua_shared_dict = counters 1m\n",
		pWork, pReport, fixturePath(t)), yml)
	report := func() (singletons, workers, ticks, count, pid int) {
		t.Helper()
		got, err := exchangeRead(dial(t, fmt.Sprintf("127.0.0.1:%d", pReport)))
		if err != nil {
			t.Fatalf("report: %q, %v", got, err)
		}
		if _, err := fmt.Sscanf(got, "singletons=%d workers=%d ticks=%d count=%d pid=%d", &singletons, &workers, &ticks, &count, &pid); err != nil {
			t.Fatalf("report %q: %v", got, err)
		}
		return
	}

	_, _, ticks0, _, _ := report()
	start := time.Now()
	const conns = 50
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pWork), "x"); err != nil || got != "e: x" {
				t.Errorf("connection: %q, %v", got, err)
			}
		}()
	}
	wg.Wait()
	singletons, workers, ticks, count, pid := report()
	elapsed := time.Since(start)

	if singletons != 1 {
		t.Errorf("worker 0's init_worker branch ran %d times; want once", singletons)
	}
	// Each connection holds its VM for 0.3 s, so they ran on many workers.
	if workers < 10 {
		t.Errorf("50 concurrent connections ran on %d workers; want many", workers)
	}
	if count != 128 {
		t.Errorf("ngx.worker.count() = %d; want the pool's maximum, 128", count)
	}
	if pid != os.Getpid() {
		t.Errorf("ngx.worker.pid() = %d; want the process's, %d", pid, os.Getpid())
	}
	// One 50 ms timer ticks at most elapsed/50ms (+1 for the edges) times;
	// a copy per VM would tick many times more.
	if most := int(elapsed/(50*time.Millisecond)) + 2; ticks-ticks0 > most {
		t.Errorf("the singleton ticked %d times in %v; want at most %d", ticks-ticks0, elapsed, most)
	}
	if ticks-ticks0 < 1 {
		t.Errorf("the singleton did not tick in %v", elapsed)
	}
}
