package stream

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/errlog"
)

// udpPendingMax is how many datagrams a client may send while its
// session is being set up (routing, preread hook, dial): they wait, in
// order, and go to the upstream once it is connected. Later ones are
// dropped, as a full socket buffer would drop them.
const udpPendingMax = 64

// udpLoop reads the listener's datagrams and hands each to its client's
// session. A client's first datagram (under the caps) starts a session
// whose set-up runs on a goroutine of its own, so the listener goes on
// serving its other clients meanwhile. Datagrams keep their boundaries:
// one read, one write.
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
		o.gate.Lock()
		if o.draining {
			o.gate.Unlock()
			continue
		}
		e.conns.Add(1)
		o.gate.Unlock()
		cfg := e.acquire()
		l, ok := cfg.Listeners[o.key]
		if !ok {
			cfg.Done()
			e.conns.Done()
			continue
		}
		if reason := e.admit(cfg, &o.caps, l.MaxSessions, l.MaxRate); reason != "" {
			cfg.Done()
			e.conns.Done()
			e.refuse(&o.caps, reason)
			continue
		}
		s := e.newSession(cfg, true, local, client)
		s.pc, s.table, s.caps = pc, table, &o.caps
		s.pending = [][]byte{bytes.Clone(buf[:n])}
		table.add(s)
		go s.serveUDP()
	}
}

// serveUDP sets a new UDP session up: it routes it, runs the preread hook
// and connects to its upstream, then sends the datagrams that waited
// meanwhile and hands the upstream's replies to a udpReader.
func (s *Session) serveUDP() {
	s.last.Store(time.Now().UnixNano())
	s.rec.Remote = s.client
	s.e.track(s)
	s.startTrace("udp", trace.SpanContext{})
	if !s.match(router.ConnInfo{Protocol: "udp", Src: s.client, Dst: s.cfg.Destination(s.local)}) {
		s.table.leave(s)
		return
	}
	up := s.connect()
	if up == nil {
		s.table.leave(s)
		return
	}
	s.idle = s.svc.idle
	r := &udpReader{s: s, up: up.(*net.UDPConn)}
	s.mu.Lock()
	s.udpReader = r
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.table.leave(s)
		s.end(StatusOK)
		return
	}
	s.table.ready(s)
	r.start()
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

// send passes a client's datagram to its session, or queues it while the
// session is set up; false when the client has no session.
func (t *udpTable) send(client netip.AddrPort, p []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[client]
	if s == nil {
		return false
	}
	if s.pending != nil {
		if len(s.pending) < udpPendingMax {
			s.pending = append(s.pending, bytes.Clone(p))
		}
		return true
	}
	s.forward(p)
	return true
}

// forward sends a client's datagram to the upstream; the table's lock is
// held.
func (s *Session) forward(p []byte) {
	s.last.Store(time.Now().UnixNano())
	s.received.Add(int64(len(p)))
	if _, err := s.up.Write(p); err != nil {
		s.e.log.Info("send() to upstream failed: "+err.Error(), errlog.Conn(s.rec.ID), "client", s.client)
	}
}

// ready sends the datagrams that waited for the session's upstream, in
// order, and lets later ones go straight through.
func (t *udpTable) ready(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range s.pending {
		s.forward(p)
	}
	s.pending = nil
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

// closeAll ends the sessions, those being set up included.
func (t *udpTable) closeAll() {
	t.mu.Lock()
	sessions := make([]*Session, 0, len(t.sessions))
	for _, s := range t.sessions {
		sessions = append(sessions, s)
	}
	t.mu.Unlock()
	for _, s := range sessions {
		s.Close()
	}
}
