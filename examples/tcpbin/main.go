// Command tcpbin is the demo's upstream and client: "tcpbin serve" echoes
// every TCP connection and UDP datagram back, like tcpbin.com; "tcpbin
// send" sends a message through a proxy and prints the echo.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tcpbin serve [-listen addr] | tcpbin send [-addr addr] [-udp] [-tls -sni name] message")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "send":
		err = send(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpbin:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("listen", "127.0.0.1:9000", "TCP and UDP address to echo on")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", *addr)
	if err != nil {
		return err
	}
	log.Printf("tcpbin: echoing TCP and UDP on %s", *addr)
	go echoUDP(pc)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go echoTCP(c)
	}
}

func echoTCP(c net.Conn) {
	defer c.Close()
	io.Copy(c, c)
}

func echoUDP(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], from)
	}
}

func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:5555", "address to send to")
	udp := fs.Bool("udp", false, "send one UDP datagram")
	useTLS := fs.Bool("tls", false, "talk TLS (certificate not verified)")
	sni := fs.String("sni", "", "server name to send with -tls")
	fs.Parse(args)
	msg := []byte(fs.Arg(0) + "\n")
	network := "tcp"
	if *udp {
		network = "udp"
	}
	c, err := net.DialTimeout(network, *addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if *useTLS {
		tc := tls.Client(c, &tls.Config{ServerName: *sni, InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			return err
		}
		st := tc.ConnectionState()
		fmt.Fprintf(os.Stderr, "tls: %s, server certificate CN=%s\n", tls.VersionName(st.Version), st.PeerCertificates[0].Subject.CommonName)
		c = tc
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	reply := make([]byte, len(msg))
	if _, err := io.ReadFull(c, reply); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if string(reply) != string(msg) {
		return errors.New("the echo differs from what was sent")
	}
	fmt.Print(string(reply))
	return nil
}
