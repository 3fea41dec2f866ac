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
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: floor net|epoll|hybrid LISTEN UPSTREAM")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "net":
		err = netProxy(os.Args[2], os.Args[3])
	case "hybrid":
		err = hybridProxy(os.Args[2], os.Args[3])
	case "epoll":
		var listen, up netip.AddrPort
		if listen, err = netip.ParseAddrPort(os.Args[2]); err == nil {
			if up, err = netip.ParseAddrPort(os.Args[3]); err == nil {
				err = epollProxy(listen, up)
			}
		}
	default:
		err = fmt.Errorf("unknown kind %q: want net, epoll or hybrid", os.Args[1])
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
