package spec

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReloadUnderLoadDropsNothing(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	p := listenPort(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), echoYML("a", a, p))
	addr := fmt.Sprintf("127.0.0.1:%d", p)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				got, err := roundTrip(addr, fmt.Sprintf("w%d-%d", w, i))
				if err != nil || !strings.HasSuffix(got, fmt.Sprintf(": w%d-%d", w, i)) {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%q, %v", got, err))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	// A long-lived connection opened before the reloads keeps its upstream.
	held := dial(t, addr)
	if got, err := exchange(held, "before"); err != nil || got != "a: before" {
		t.Fatalf("held connection: %q, %v", got, err)
	}
	const reloads = 20
	for i := range reloads {
		yml := echoYML("a", a, p)
		if i%2 == 0 {
			yml = echoYML("b", b, p)
		}
		writeFile(t, g.ymlPath, yml)
		if err := g.srv.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	// The reloads may outlast the deadline dial set on a slow machine; the
	// connection's own idle timeout (60 s) is what must not have ended it.
	held.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := exchange(held, "after"); err != nil || got != "a: after" {
		t.Errorf("held connection after %d reloads: %q, %v; want it untouched on upstream a", reloads, got, err)
	}
	if failed.Load() > 0 || ok.Load() == 0 {
		t.Errorf("%d failed and %d good connections across %d reloads; want no failure (first: %v)", failed.Load(), ok.Load(), reloads, firstErr.Load())
	}
	// The last reload (odd) routed to a again.
	if got, err := roundTrip(addr, "new"); err != nil || got != "a: new" {
		t.Errorf("after reloads: %q, %v; want a: new", got, err)
	}
}

func TestReloadSwitchesRoutes(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	p := listenPort(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), echoYML("a", a, p))
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	writeFile(t, g.ymlPath, echoYML("b", b, p))
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(addr, "x"); err != nil || got != "b: x" {
		t.Errorf("after reload: %q, %v; want b: x", got, err)
	}
}

func TestBadReloadKeepsServing(t *testing.T) {
	t.Parallel()
	a := startEcho(t, "a")
	p := listenPort(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), echoYML("a", a, p))
	addr := fmt.Sprintf("127.0.0.1:%d", p)

	writeFile(t, g.ymlPath, "_format_version: \"3.0\"\nservices:\n  - name: x\n    protocol: carrier-pigeon\n    host: a\n")
	err := g.srv.Reload()
	if err == nil || !strings.Contains(err.Error(), "in 'protocol': expected one of") {
		t.Fatalf("reload with a bad kong.yml: %v; want the declarative error", err)
	}
	if got, err := roundTrip(addr, "x"); err != nil || got != "a: x" {
		t.Errorf("after a bad kong.yml: %q, %v; want the old config serving", got, err)
	}

	writeFile(t, g.ymlPath, echoYML("a", a, p))
	writeFile(t, g.confPath, "log_level = loud\n")
	if err := g.srv.Reload(); err == nil || !strings.Contains(err.Error(), "log_level has an invalid value: 'loud'") {
		t.Fatalf("reload with a bad kong.conf: %v", err)
	}
	if got, err := roundTrip(addr, "y"); err != nil || got != "a: y" {
		t.Errorf("after a bad kong.conf: %q, %v; want the old config serving", got, err)
	}
	if !strings.Contains(g.errLog.String(), "reload failed, the previous configuration keeps serving") {
		t.Errorf("failed reload not logged:\n%s", g.errLog)
	}
}

func TestReloadOpensAndClosesListeners(t *testing.T) {
	t.Parallel()
	a := startEcho(t, "a")
	p1, p2 := listenPort(t), listenPort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("a", a, "", "      - protocols: [tcp]\n        sources: [{ip: 127.0.0.1}]\n")
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p1), yml)
	base, err := os.ReadFile(g.confPath)
	if err != nil {
		t.Fatal(err)
	}

	held := dial(t, fmt.Sprintf("127.0.0.1:%d", p1))
	if got, err := exchange(held, "1"); err != nil || got != "a: 1" {
		t.Fatalf("held: %q, %v", got, err)
	}
	writeFile(t, g.confPath, strings.Replace(string(base), fmt.Sprintf("stream_listen = 127.0.0.1:%d", p1), fmt.Sprintf("stream_listen = 127.0.0.1:%d", p2), 1))
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p2), "new"); err != nil || got != "a: new" {
		t.Errorf("new listener: %q, %v", got, err)
	}
	if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p1), "old"); err == nil {
		t.Errorf("the removed listener still accepts connections")
	}
	if got, err := exchange(held, "2"); err != nil || got != "a: 2" {
		t.Errorf("a connection of the removed listener: %q, %v; want it untouched", got, err)
	}
}

func TestQuitDrainsInFlight(t *testing.T) {
	t.Parallel()
	a := startEcho(t, "a")
	p := listenPort(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), echoYML("a", a, p))
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	c := dial(t, addr)
	if got, err := exchange(c, "one"); err != nil || got != "a: one" {
		t.Fatal(got, err)
	}
	quit := make(chan struct{})
	go func() { g.srv.Quit(); close(quit) }()
	// New connections are refused once the listener is closed.
	refused := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if _, err := roundTrip(addr, "late"); err != nil {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("gong kept accepting connections after quit")
	}
	// The exchange in flight goes on.
	if got, err := exchange(c, "two"); err != nil || got != "a: two" {
		t.Errorf("in-flight connection during quit: %q, %v", got, err)
	}
	select {
	case <-quit:
		t.Fatal("quit returned while a connection was open")
	default:
	}
	c.Close()
	select {
	case <-quit:
	case <-time.After(10 * time.Second):
		t.Fatal("quit did not end after the last connection closed")
	}
	if err := <-g.srv.Done(); err != nil {
		t.Errorf("Done after quit = %v; want nil", err)
	}
}

// TestReloadReleasesOldGenerations: a replaced generation with no session
// left closes its Lua VMs (their pool's goroutine included), so reloads do
// not accumulate them; one still in use waits for its last session.
func TestReloadReleasesOldGenerations(t *testing.T) {
	a := startEcho(t, "a")
	p := listenPort(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), echoYML("a", a, p))
	held := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
	if _, err := exchange(held, "x"); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	for range 10 {
		if err := g.srv.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	if grown := runtime.NumGoroutine() - base; grown > 2 {
		t.Errorf("10 reloads left %d more goroutines; replaced generations are not released", grown)
	}
	// The generation of the held connection still serves it.
	if got, err := exchange(held, "y"); err != nil || got != "a: y" {
		t.Errorf("connection of an old generation: %q, %v", got, err)
	}
}
