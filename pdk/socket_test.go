package pdk

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serveTCP runs handle on every connection to a loopback listener and
// returns its address and the count of accepted connections.
func serveTCP(t testing.TB, handle func(net.Conn)) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String(), &accepted
}

// echoLines answers each line with itself.
func echoLines(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		io.WriteString(c, line)
	}
}

func TestCosocketReceivePatterns(t *testing.T) {
	addr, _ := serveTCP(t, func(c net.Conn) {
		io.WriteString(c, "line1\r\nline2\nABCDEFtail")
	})
	host, port, _ := net.SplitHostPort(addr)
	e := newEnv(t, PhasePreread, Options{})
	got := runString(t, e.vm, fmt.Sprintf(`
		local sock = ngx.socket.tcp()
		sock:settimeout(5000)
		assert(sock:connect(%q, %s))
		local a = sock:receive()
		local b = sock:receive("*l")
		local c = sock:receive(3)
		local d = sock:receive("*a")
		local e, err, partial = sock:receive()
		return table.concat({a, b, c, d, tostring(e), err, partial}, "|")`, host, port))
	if want := "line1|line2|ABC|DEFtail|nil|closed|"; got != want {
		t.Errorf("receives = %q; want %q", got, want)
	}
}

func TestCosocketPartialAndTimeout(t *testing.T) {
	release := make(chan struct{})
	addr, _ := serveTCP(t, func(c net.Conn) {
		io.WriteString(c, "par")
		<-release
	})
	t.Cleanup(func() { close(release) })
	host, port, _ := net.SplitHostPort(addr)
	e := newEnv(t, PhasePreread, Options{})
	got := runString(t, e.vm, fmt.Sprintf(`
		local sock = ngx.socket.tcp()
		sock:settimeouts(1000, 1000, 50)
		assert(sock:connect(%q, %s))
		local data, err, partial = sock:receive(10)
		-- a timeout leaves the socket open
		local sent = sock:send({"a", {"b", 1}})
		return table.concat({tostring(data), err, partial, tostring(sent)}, "|")`, host, port))
	if want := "nil|timeout|par|3"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

func TestCosocketConnectErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	host, port, _ := net.SplitHostPort(addr)
	e := newEnv(t, PhasePreread, Options{})
	got := runString(t, e.vm, fmt.Sprintf(`
		local ok, err = ngx.socket.tcp():connect(%q, %s)
		local ok2, err2 = ngx.socket.tcp():connect("no-such-host.invalid", 80)
		return tostring(ok) .. "|" .. err .. "|" .. tostring(ok2) .. "|" .. err2`, host, port))
	if !strings.HasPrefix(got, "nil|connection refused|nil|[cosocket] DNS resolution failed: ") {
		t.Errorf("got %q", got)
	}
}

func TestCosocketKeepalive(t *testing.T) {
	addr, accepted := serveTCP(t, echoLines)
	host, port, _ := net.SplitHostPort(addr)
	sockets := NewSocketPool()
	t.Cleanup(sockets.Close)
	e := newEnv(t, PhasePreread, Options{Sockets: sockets})
	code := fmt.Sprintf(`
		local sock = ngx.socket.tcp()
		assert(sock:connect(%q, %s))
		local times = sock:getreusedtimes()
		assert(sock:send("ping\n"))
		local line = assert(sock:receive())
		assert(sock:setkeepalive(10000, 5))
		local _, err = sock:send("x")
		return times .. " " .. line .. " " .. err`, host, port)
	for i, want := range []string{"0 ping closed", "1 ping closed", "2 ping closed"} {
		if got := runString(t, e.vm, code); got != want {
			t.Errorf("use %d = %q; want %q", i+1, got, want)
		}
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("server accepted %d connections; want 1 kept alive", n)
	}
	// A second VM of the generation shares the pool.
	e2 := newEnv(t, PhasePreread, Options{Sockets: sockets})
	if got := runString(t, e2.vm, code); got != "3 ping closed" {
		t.Errorf("other VM = %q; want the pooled connection", got)
	}
}

func TestCosocketKeepaliveDropsClosedPeer(t *testing.T) {
	addr, accepted := serveTCP(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		line, _ := r.ReadString('\n')
		io.WriteString(c, line) // answer once, then close
	})
	host, port, _ := net.SplitHostPort(addr)
	sockets := NewSocketPool()
	t.Cleanup(sockets.Close)
	e := newEnv(t, PhasePreread, Options{Sockets: sockets})
	code := fmt.Sprintf(`
		local sock = ngx.socket.tcp()
		assert(sock:connect(%q, %s))
		local times = sock:getreusedtimes()
		assert(sock:send("ping\n"))
		assert(sock:receive())
		assert(sock:setkeepalive())
		return times`, host, port)
	runString(t, e.vm, code)
	// Wait for the pool to notice the peer's close.
	deadline := time.Now().Add(5 * time.Second)
	for sockets.Idle(addr) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := runString(t, e.vm, code); got != "0" {
		t.Errorf("reused times after the peer closed = %s; want a new connection", got)
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("accepted %d; want 2", n)
	}
}

func TestCosocketSSLHandshake(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secret")
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	code := fmt.Sprintf(`
		local sock = ngx.socket.tcp()
		sock:settimeout(5000)
		assert(sock:connect(%q, %s))
		local sess, err = sock:sslhandshake(nil, "example.com", true)
		if not sess then return err end
		assert(sock:send("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"))
		local status = sock:receive()
		local body = sock:receive("*a")
		return type(sess) .. " " .. status .. " " .. body:sub(-6)`, host, port)
	e := newEnv(t, PhasePreread, Options{TrustedCAs: roots})
	if got := runString(t, e.vm, code); got != "userdata HTTP/1.0 200 OK secret" {
		t.Errorf("trusted handshake: %q", got)
	}
	e2 := newEnv(t, PhasePreread, Options{TrustedCAs: x509.NewCertPool()})
	if got := runString(t, e2.vm, code); !strings.HasPrefix(got, "certificate verify failed") {
		t.Errorf("untrusted handshake: %q; want a verify failure", got)
	}
}

func TestCosocketUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1024)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("re:"), buf[:n]...), from)
		}
	}()
	host, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	e := newEnv(t, PhasePreread, Options{})
	got := runString(t, e.vm, fmt.Sprintf(`
		local sock = ngx.socket.udp()
		sock:settimeout(5000)
		assert(sock:setpeername(%q, %s))
		assert(sock:send({"da", "ta"}))
		local data = assert(sock:receive())
		assert(sock:close())
		local _, err = sock:send("x")
		return data .. " " .. err`, host, port))
	if got != "re:data closed" {
		t.Errorf("udp = %q", got)
	}
}

func TestCosocketPhases(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{})
	wantLuaError(t, e.vm, `ngx.socket.tcp():connect("127.0.0.1", 1)`, "API disabled in the context of log_by_lua*")
	wantLuaError(t, e.vm, `ngx.socket.udp():setpeername("127.0.0.1", 1)`, "API disabled in the context of log_by_lua*")
	wantLuaError(t, e.vm, `ngx.sleep(0)`, "API disabled in the context of log_by_lua*")
}

func TestCosocketHonoursPhaseDeadline(t *testing.T) {
	release := make(chan struct{})
	addr, _ := serveTCP(t, func(net.Conn) { <-release })
	t.Cleanup(func() { close(release) })
	host, port, _ := net.SplitHostPort(addr)
	e := newEnv(t, PhasePreread, Options{})
	fn, err := e.vm.L.LoadString(fmt.Sprintf(`
		local sock = ngx.socket.tcp()
		sock:settimeout(60000)
		assert(sock:connect(%q, %s))
		return sock:receive()`, host, port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := e.vm.Call(ctx, fn)
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("receive outlived the phase deadline")
	}
}

func TestCosocketsCloseWithTheLease(t *testing.T) {
	closed := make(chan struct{})
	addr, _ := serveTCP(t, func(c net.Conn) {
		c.Read(make([]byte, 1))
		close(closed)
	})
	host, port, _ := net.SplitHostPort(addr)
	pool, _ := reportPool(t, nil, Options{}, "")
	defer pool.Close()
	leaseRun(t, pool, PhasePreread, fmt.Sprintf(`
		leaked = ngx.socket.tcp()
		assert(leaked:connect(%q, %s))`, host, port))
	next(t, closed)
}

func TestSocketConnectShortcut(t *testing.T) {
	addr, _ := serveTCP(t, echoLines)
	host, port, _ := net.SplitHostPort(addr)
	e := newEnv(t, PhasePreread, Options{})
	got := runString(t, e.vm, fmt.Sprintf(`
		local sock = assert(ngx.socket.connect(%q, %s))
		assert(sock:send("hi\n"))
		return sock:receive()`, host, port))
	if got != "hi" {
		t.Errorf("ngx.socket.connect exchange = %q", got)
	}
}

func TestCosocketReceiveUntil(t *testing.T) {
	addr, _ := serveTCP(t, func(c net.Conn) {
		io.WriteString(c, "part one--sep--part two--sep--rest")
	})
	host, port, _ := net.SplitHostPort(addr)
	e := newEnv(t, PhasePreread, Options{})
	got := runString(t, e.vm, fmt.Sprintf(`
		local sock = ngx.socket.tcp()
		assert(sock:connect(%q, %s))
		local until_sep = sock:receiveuntil("--sep--")
		local first = until_sep()
		local pieces = {}
		repeat
			local piece = until_sep(3)
			pieces[#pieces + 1] = piece
		until not piece
		local inclusive = sock:receiveuntil("st", { inclusive = true })
		return first .. "|" .. table.concat(pieces, ",") .. "|" .. inclusive()`, host, port))
	if want := "part one|par,t t,wo|rest"; got != want {
		t.Errorf("receiveuntil = %q; want %q", got, want)
	}
}

func TestSocketURL(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{})
	got := runString(t, e.vm, `
		local url = require "socket.url"
		local u = url.parse("https://user:pa%20ss@example.com:8443/a/b?x=1#frag")
		local d = url.parse("/only/path", { scheme = "http", port = "80" })
		return table.concat({u.scheme, u.userinfo, u.user, u.password, u.host, u.port, u.path,
			u.query, u.fragment, u.authority, d.scheme, d.port, d.path, tostring(d.host),
			url.escape("a b/c"), url.unescape("a%20b+c"), url.build(u)}, "|")`)
	want := "https|user:pa%20ss|user|pa%20ss|example.com|8443|/a/b|x=1|frag|user:pa%20ss@example.com:8443|http|80|/only/path|nil|" +
		"a%20b%2fc|a b+c|https://user:pa%20ss@example.com:8443/a/b?x=1#frag"
	if got != want {
		t.Errorf("socket.url:\n got %s\nwant %s", got, want)
	}
}

func TestCosocketUnix(t *testing.T) {
	path := t.TempDir() + "/s.sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err == nil {
			echoLines(c)
			c.Close()
		}
	}()
	e := newEnv(t, PhasePreread, Options{})
	got := runString(t, e.vm, fmt.Sprintf(`
		local sock = ngx.socket.tcp()
		assert(sock:connect("unix:%s"))
		assert(sock:send("over unix\n"))
		return sock:receive()`, path))
	if got != "over unix" {
		t.Errorf("unix socket exchange = %q", got)
	}
}
