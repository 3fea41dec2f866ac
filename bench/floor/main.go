// Command floor is three reference proxies for bench/floor.sh, which
// measures them beside nginx and gong: what a plain TCP proxy written in
// Go costs per connection when it does nothing else, so that gong's own
// cost can be told from its language's.
//
//	floor net   LISTEN UPSTREAM   accept, net.Dial and two io.Copy: a
//	                              goroutine per connection and direction
//	floor epoll LISTEN UPSTREAM   one epoll loop per core on a reuseport
//	                              listener with raw non-blocking sockets:
//	                              no goroutine per connection (Linux)
//	floor hybrid LISTEN UPSTREAM  net's accept and dial, then the
//	                              sockets leave Go's poller for an epoll
//	                              loop per core that relays (Linux)
//	floor tls LISTEN UPSTREAM CERT KEY
//	                              net's proxy behind crypto/tls's server
//	                              with X25519 and Go's session tickets:
//	                              the floor under gong's TLS termination
//
// All end a connection at the first EOF from either side, as gong does
// by default. They serve the bench only: no timeouts, no limits.
package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
)

func main() {
	if len(os.Args) != 4 && !(len(os.Args) == 6 && os.Args[1] == "tls") {
		fmt.Fprintln(os.Stderr, "usage: floor net|epoll|hybrid LISTEN UPSTREAM, or floor tls LISTEN UPSTREAM CERT KEY")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "net":
		err = netProxy(os.Args[2], os.Args[3])
	case "hybrid":
		err = hybridProxy(os.Args[2], os.Args[3])
	case "tls":
		err = tlsProxy(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	case "epoll":
		var listen, up netip.AddrPort
		if listen, err = netip.ParseAddrPort(os.Args[2]); err == nil {
			if up, err = netip.ParseAddrPort(os.Args[3]); err == nil {
				err = epollProxy(listen, up)
			}
		}
	default:
		err = fmt.Errorf("unknown kind %q: want net, epoll, hybrid or tls", os.Args[1])
	}
	fmt.Fprintln(os.Stderr, "floor:", err)
	os.Exit(1)
}

// netProxy is the proxy Go's documentation would suggest.
func netProxy(listen, upstream string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	return relayAll(ln, upstream)
}

// relayAll relays each connection ln accepts to upstream, a goroutine per
// connection and direction.
func relayAll(ln net.Listener, upstream string) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				return
			}
			defer u.Close()
			go func() { io.Copy(u, c); u.Close(); c.Close() }()
			io.Copy(c, u)
		}()
	}
}
