package stream

import (
	"net"
	"slices"
	"sync"

	"github.com/gong-proxy/gong/runtime/conf"
)

// Inherited holds sockets opened before the server starts, keyed by the
// address of the listen entry that is to use them (conf.Listener.Addr(),
// "127.0.0.1:8000"): socket activation, or a test that binds 127.0.0.1:0,
// reads the port back and writes it into stream_listen, admin_listen or
// status_listen. Listen hands a matching socket out once, so a listener
// that is closed and opened again (a reload) binds anew. The entry's socket
// flags (reuseport, backlog=, ...) are not applied to an inherited socket.
type Inherited struct {
	mu  sync.Mutex
	tcp map[string]net.Listener
	udp map[string]net.PacketConn
}

// AddTCP offers a listening TCP socket for the entry with its address.
func (in *Inherited) AddTCP(ln net.Listener) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.tcp == nil {
		in.tcp = map[string]net.Listener{}
	}
	in.tcp[ln.Addr().String()] = ln
}

// AddUDP offers a UDP socket for the udp entry with its address.
func (in *Inherited) AddUDP(pc net.PacketConn) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.udp == nil {
		in.udp = map[string]net.PacketConn{}
	}
	in.udp[pc.LocalAddr().String()] = pc
}

// Drop closes and forgets the sockets still offered for addr.
func (in *Inherited) Drop(addr string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if ln := in.tcp[addr]; ln != nil {
		ln.Close()
		delete(in.tcp, addr)
	}
	if pc := in.udp[addr]; pc != nil {
		pc.Close()
		delete(in.udp, addr)
	}
}

// Unused returns the addresses of the sockets no listen entry has taken,
// sorted.
func (in *Inherited) Unused() []string {
	if in == nil {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	var addrs []string
	for addr := range in.tcp {
		addrs = append(addrs, addr)
	}
	for addr := range in.udp {
		addrs = append(addrs, addr+" udp")
	}
	slices.Sort(addrs)
	return addrs
}

// Listen opens the socket of a listen entry: the inherited one for its
// address when there is one (nil Inherited has none), else a new one
// (ListenSocket).
func (in *Inherited) Listen(l conf.Listener) (net.Listener, net.PacketConn, error) {
	if in != nil {
		in.mu.Lock()
		addr := l.Addr()
		if l.UDP {
			if pc := in.udp[addr]; pc != nil {
				delete(in.udp, addr)
				in.mu.Unlock()
				return nil, pc, nil
			}
		} else if ln := in.tcp[addr]; ln != nil {
			delete(in.tcp, addr)
			in.mu.Unlock()
			return ln, nil, nil
		}
		in.mu.Unlock()
	}
	return ListenSocket(l)
}
