package stream

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/errlog"
)

// udpLoop reads the listener's datagrams and hands each to its client's
// session, creating the session on a client's first datagram. Datagrams
// keep their boundaries: one read, one write.
func (e *Engine) udpLoop(o *socket) {
	defer o.loop.Done()
	pc := o.pc.(*net.UDPConn)
	local := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	table := &udpTable{sessions: map[netip.AddrPort]*Session{}}
	buf := make([]byte, 64<<10)
	for {
		n, client, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if o.closed.Load() {
				table.closeAll() // replies can no longer reach the clients
				return
			}
			e.log.Error(fmt.Sprintf("recvfrom() failed on %s: %v", o.key.Addr, err))
			continue
		}
		if table.send(client, buf[:n]) {
			continue
		}
		cfg := e.acquire()
		if _, ok := cfg.Listeners[o.key]; !ok {
			cfg.Done()
			continue
		}
		e.conns.Add(1)
		s := e.newSession(cfg, true, local, client)
		s.pc, s.table = pc, table
		// Set-up runs here, on the listener's goroutine, before the
		// session's first datagram goes out: a slow preread hook delays
		// the listener's other clients.
		if !s.setUpUDP() {
			continue
		}
		table.add(s)
		go s.serveUDP()
		table.send(client, buf[:n])
	}
}

// setUpUDP routes a new UDP session, runs the preread hook and connects
// to its upstream; false, after ending the session, when that fails.
func (s *Session) setUpUDP() bool {
	s.last.Store(time.Now().UnixNano())
	s.rec.RemoteAddr, s.rec.RemotePort = s.client.Addr().String(), int(s.client.Port())
	s.e.track(s)
	s.startTrace("udp", trace.SpanContext{})
	if !s.match(router.ConnInfo{Protocol: "udp", Src: s.client, Dst: s.cfg.Destination(s.local)}) {
		return false
	}
	up := s.connect()
	if up == nil {
		return false
	}
	s.idle = s.svc.idle
	return true
}

// serveUDP relays the upstream's datagrams to the client until the
// session has been idle (no datagram either way) for the service's
// timeout.
func (s *Session) serveUDP() {
	up := s.up.(*net.UDPConn)
	buf := make([]byte, 64<<10)
	for {
		deadline := time.Unix(0, s.last.Load()).Add(s.idle)
		if !time.Now().Before(deadline) && s.table.leaveIdle(s) {
			break
		}
		up.SetReadDeadline(deadline)
		n, err := up.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue // the loop head decides whether the session is idle
			}
			break
		}
		s.last.Store(time.Now().UnixNano())
		if _, err := s.pc.WriteToUDPAddrPort(buf[:n], s.client); err != nil {
			break
		}
		s.sent.Add(int64(n))
	}
	s.table.leave(s)
	s.end(StatusOK)
}

// udpTable is a listener's sessions by client address. A session leaves
// it under the lock datagrams are sent under, so none goes to a session
// that has decided to end: the next one starts a new session.
type udpTable struct {
	mu       sync.Mutex
	sessions map[netip.AddrPort]*Session
}

func (t *udpTable) add(s *Session) {
	t.mu.Lock()
	t.sessions[s.client] = s
	t.mu.Unlock()
}

// send passes a client's datagram to its session; false when it has none.
func (t *udpTable) send(client netip.AddrPort, p []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[client]
	if s == nil {
		return false
	}
	s.last.Store(time.Now().UnixNano())
	s.received.Add(int64(len(p)))
	if _, err := s.up.Write(p); err != nil {
		s.e.log.Info("send() to upstream failed: "+err.Error(), errlog.Conn(s.rec.ID), "client", client)
	}
	return true
}

// leaveIdle removes an idle session; false when a datagram came meanwhile.
func (t *udpTable) leaveIdle(s *Session) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(time.Unix(0, s.last.Load())) < s.idle {
		return false
	}
	delete(t.sessions, s.client)
	return true
}

// leave removes a session that ends for another reason than idleness.
func (t *udpTable) leave(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions[s.client] == s {
		delete(t.sessions, s.client)
	}
}

// closeAll ends the sessions: their upstream sockets close, and each
// session's reader ends it.
func (t *udpTable) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sessions {
		s.up.Close()
	}
}
