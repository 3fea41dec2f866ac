package runtime

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// udpSession is one client address's datagram exchange with an upstream.
type udpSession struct {
	plugged
	pc    *net.UDPConn // the listener, to answer the client
	table *udpTable    // the listener's sessions, which this one leaves when idle
	up    *net.UDPConn // connected to the chosen peer
	idle  time.Duration
	last  atomic.Int64 // unix nanoseconds of the last datagram either way

	received atomic.Int64 // bytes from the client
	sent     atomic.Int64 // bytes to the client, relayed from the upstream
	svc      *service
	att      *attempts // released when the session ends
}

// udpReply writes to one client through the listener: where a plugin's
// exit body goes.
type udpReply struct {
	pc     *net.UDPConn
	client netip.AddrPort
}

func (r udpReply) Write(p []byte) (int, error) { return r.pc.WriteToUDPAddrPort(p, r.client) }

// udpLoop reads the listener's datagrams and hands each to its client's
// session, creating the session on a client's first datagram. Datagrams
// keep their boundaries: one read, one write.
func (s *Server) udpLoop(o *socket) {
	defer o.loop.Done()
	pc := o.pc.(*net.UDPConn)
	local := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	table := &udpTable{sessions: map[netip.AddrPort]*udpSession{}}
	buf := make([]byte, 64<<10)
	for {
		n, client, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if o.closed.Load() {
				// Replies can no longer reach the clients: end the sessions.
				table.mu.Lock()
				for _, us := range table.sessions {
					us.up.Close()
				}
				table.mu.Unlock()
				return
			}
			s.log.logf(LevelError, 0, "recvfrom() failed on %s: %v", o.key.addr, err)
			continue
		}
		if table.send(client, buf[:n]) {
			continue
		}
		g := s.acquire()
		if _, ok := g.listeners[o.key]; !ok {
			g.done()
			continue
		}
		us := s.newUDPSession(g, pc, client, local)
		if us == nil {
			continue
		}
		us.table = table
		table.mu.Lock()
		table.sessions[client] = us
		table.mu.Unlock()
		s.conns.Add(1)
		go func() {
			us.serve()
			s.conns.Done()
		}()
		table.send(client, buf[:n])
	}
}

// udpTable is a listener's sessions by client address. A session leaves
// it under the lock datagrams are sent under, so none goes to a session
// that has decided to end: the next one starts a new session.
type udpTable struct {
	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
}

// send passes a client's datagram to its session; false when it has none.
func (t *udpTable) send(client netip.AddrPort, p []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	us := t.sessions[client]
	if us == nil {
		return false
	}
	us.last.Store(time.Now().UnixNano())
	us.received.Add(int64(len(p)))
	if _, err := us.up.Write(p); err != nil {
		us.s.log.logf(LevelInfo, us.sess.id, "send() to upstream failed: %v, client: %s", err, client)
	}
	return true
}

// leaveIdle removes an idle session; false when a datagram came meanwhile.
func (t *udpTable) leaveIdle(us *udpSession) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(time.Unix(0, us.last.Load())) < us.idle {
		return false
	}
	delete(t.sessions, us.client)
	return true
}

// leave removes a session that ends for another reason than idleness.
func (t *udpTable) leave(us *udpSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions[us.client] == us {
		delete(t.sessions, us.client)
	}
}

// newUDPSession routes a new client and connects to its upstream; it
// returns nil, after logging the session, when that fails.
func (s *Server) newUDPSession(g *generation, pc *net.UDPConn, client, local netip.AddrPort) *udpSession {
	us := &udpSession{plugged: plugged{s: s, g: g, client: client, local: local, peer: client}, pc: pc}
	us.last.Store(time.Now().UnixNano())
	us.sess = session{id: s.nextID.Add(1), protocol: "UDP", start: time.Now(),
		remoteAddr: client.Addr().String(), remotePort: int(client.Port()),
		serverAddr: local.Addr().String(), serverPort: int(local.Port())}
	us.startTrace("udp", trace.SpanContext{})
	rt, ok := g.router.Match(router.ConnInfo{Protocol: "udp", Src: client, Dst: g.destination(local)})
	if us.trace != nil {
		us.routeSpan(rt, "")
	}
	if !ok {
		s.log.logf(LevelError, us.sess.id, "no Route found with those values%s", us.context())
		us.end(statusInternalError)
		return nil
	}
	us.target = rt.Value.(*routeTarget)
	us.opened()
	// Plugins run here, on the listener's goroutine, before the session's
	// first datagram goes out: a slow preread handler delays the
	// listener's other clients.
	if len(us.target.preread) > 0 {
		if status, done := us.preread(us.target, udpReply{pc, client}); done {
			us.end(status)
			return nil
		}
	}
	if us.target.service == nil {
		s.log.logf(LevelWarn, us.sess.id, "no Service found with those values%s", us.context())
		us.end(statusServiceUnavailable)
		return nil
	}
	svc := us.service(us.target.service)
	us.idle = svc.idle
	us.svc, us.att = svc, svc.peers.start(client, true)
	for attempt := 0; attempt < svc.tries; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), svc.connect)
		pick := time.Now()
		peer, host, err := svc.peers.next(ctx, us.att)
		cancel()
		if err != nil {
			s.log.logf(LevelError, us.sess.id, "%v, client: %s, server: %s, service: %s", err, client.Addr(), local, svc.name)
			us.end(statusServiceUnavailable)
			return nil
		}
		us.sess.tried(peer, balancerTry{start: pick, latency: time.Since(pick), host: host})
		var sp trace.Span
		if us.trace != nil {
			sp = us.attemptSpan(svc, attempt, peer)
		}
		up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(peer)))
		if sp != nil {
			if err != nil {
				telemetry.Fail(sp, err)
			}
			sp.End()
		}
		if err == nil {
			us.up = up
			return us
		}
		s.log.logf(LevelError, us.sess.id, "%s while connecting to upstream, client: %s, server: %s, upstream: \"%s\"", connectError(err), client.Addr(), local, peer)
	}
	us.end(statusBadGateway)
	return nil
}

// serve relays the upstream's datagrams to the client until the session
// has been idle (no datagram either way) for the service's timeout.
func (us *udpSession) serve() {
	us.s.track(us)
	defer us.s.untrack(us)
	defer us.up.Close()
	buf := make([]byte, 64<<10)
	for {
		deadline := time.Unix(0, us.last.Load()).Add(us.idle)
		if !time.Now().Before(deadline) && us.table.leaveIdle(us) {
			break
		}
		us.up.SetReadDeadline(deadline)
		n, err := us.up.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue // the loop head decides whether the session is idle
			}
			break
		}
		us.last.Store(time.Now().UnixNano())
		if _, err := us.pc.WriteToUDPAddrPort(buf[:n], us.client); err != nil {
			break
		}
		us.sent.Add(int64(n))
	}
	us.table.leave(us)
	us.end(statusOK)
}

// Close ends the session: its upstream socket closes, and serve ends it.
func (us *udpSession) Close() error { return us.up.Close() }

// end releases the session's peer, runs the log phase and writes the
// access-log line.
func (us *udpSession) end(status int) {
	if us.att != nil {
		us.svc.peers.release(us.att, 0, status)
	}
	us.sess.status = status
	us.sess.end = time.Now()
	us.sess.bytesSent += us.sent.Load()
	us.sess.bytesReceived = us.received.Load()
	us.sess.upstreamBytesSent, us.sess.upstreamBytesRecv = us.sess.bytesReceived, us.sess.bytesSent
	us.logPhase()
	us.endTrace()
	us.ended()
	if us.g.access != nil {
		us.g.access.write(us.g.format.appendLine(nil, &us.sess))
	}
	us.g.done()
}
