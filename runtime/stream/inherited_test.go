package stream

import (
	"net"
	"testing"

	"github.com/gong-proxy/gong/runtime/conf"
)

// TestInheritedSockets: a listen entry takes the socket bound for its
// address, once; then, and for other addresses, it binds its own.
func TestInheritedSockets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	in := &Inherited{}
	in.AddTCP(ln)
	in.AddUDP(pc)
	port := ln.Addr().(*net.TCPAddr).Port
	entry := conf.Listener{Host: "127.0.0.1", Port: port}

	got, _, err := in.Listen(entry)
	if err != nil || got != ln {
		t.Fatalf("Listen(tcp entry) = %v, %v; want the inherited listener", got, err)
	}
	udp := entry
	udp.UDP = true
	if _, gotPC, err := in.Listen(udp); err != nil || gotPC != pc {
		t.Fatalf("Listen(udp entry) = %v, %v; want the inherited socket", gotPC, err)
	}
	// Taken once: the address is in use by the inherited listener now.
	if again, _, err := in.Listen(entry); err == nil {
		again.Close()
		t.Fatal("a second Listen of the same address was handed a socket; want a bind error")
	}
	ln.Close()
	pc.Close()

	other, _, err := in.Listen(conf.Listener{Host: "127.0.0.1"})
	if err != nil {
		t.Fatalf("Listen(port 0) binds its own: %v", err)
	}
	other.Close()
	var none *Inherited
	if own, _, err := none.Listen(conf.Listener{Host: "127.0.0.1"}); err != nil {
		t.Fatalf("nil Inherited binds: %v", err)
	} else {
		own.Close()
	}
}

// TestInheritedDrop closes the sockets no listener took.
func TestInheritedDrop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &Inherited{}
	in.AddTCP(ln)
	in.Drop(ln.Addr().String())
	if _, err := ln.Accept(); err == nil {
		t.Fatal("Accept on a dropped socket succeeded; want it closed")
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("dialled a dropped socket; want connection refused")
	}
}
