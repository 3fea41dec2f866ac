// l4load: a small TCP/TLS load generator and echo server used to measure
// L4 proxies side by side. A copy of the shared bench's tool with -resume,
// for the TLS rows of bench/tls.sh.
//
//	l4load echo  -listen 127.0.0.1:9000   (TCP and UDP on the same port)
//	l4load rr    -addr 127.0.0.1:8000 -c 50 -d 5s -size 64 [-reconnect] [-tls -sni x [-resume] [-tls12] | -udp]
//	l4load bulk  -addr 127.0.0.1:8000 -c 4 -d 5s -size 65536 [-tls -sni x]
//	l4load hold  -addr 127.0.0.1:8000 -c 10000 -d 10s
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: l4load echo|rr|bulk|hold [flags]")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "echo: listen address")
	addr := fs.String("addr", "127.0.0.1:8000", "target address")
	conc := fs.Int("c", 50, "concurrent connections")
	dur := fs.Duration("d", 5*time.Second, "duration")
	size := fs.Int("size", 64, "payload bytes per round trip / write")
	reconnect := fs.Bool("reconnect", false, "rr: new connection for every round trip")
	useTLS := fs.Bool("tls", false, "connect with TLS")
	sni := fs.String("sni", "", "TLS server name")
	resume := fs.Bool("resume", false, "tls: keep session tickets and resume with them (with -reconnect, every connection after a client's first)")
	tls12 := fs.Bool("tls12", false, "tls: offer TLS 1.2 at most, whose resumption makes no new key exchange")
	useUDP := fs.Bool("udp", false, "rr: one UDP socket (a proxy session) per client; -reconnect opens a new one per round trip")
	fs.Parse(os.Args[2:])

	var tcfg *tls.Config
	if *useTLS {
		tcfg = &tls.Config{InsecureSkipVerify: true, ServerName: *sni, ClientSessionCache: nil}
		if *resume {
			tcfg.ClientSessionCache = tls.NewLRUClientSessionCache(4 * *conc)
		}
		if *tls12 {
			tcfg.MaxVersion = tls.VersionTLS12
		}
	}
	dial := func() (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		if tcfg != nil {
			c, err := tls.DialWithDialer(&d, "tcp", *addr, tcfg)
			if err != nil {
				return nil, err
			}
			handshakes.Add(1)
			if c.ConnectionState().DidResume {
				resumed.Add(1)
			}
			return c, nil
		}
		if *useUDP {
			return d.Dial("udp", *addr)
		}
		return d.Dial("tcp", *addr)
	}
	wait := 5 * time.Second
	if *useUDP {
		wait = time.Second // a lost datagram costs one second, and counts as an error
	}
	switch mode {
	case "echo":
		echo(*listen)
	case "rr":
		rr(dial, *conc, *dur, *size, *reconnect, wait)
	case "bulk":
		bulk(dial, *conc, *dur, *size)
	case "hold":
		hold(dial, *conc, *dur)
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		os.Exit(2)
	}
}

// handshakes and resumed count the TLS handshakes, for rr's report.
var handshakes, resumed atomic.Int64

func echo(listen string) {
	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				continue
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

func roundTrip(c net.Conn, out, in []byte) error {
	if _, err := c.Write(out); err != nil {
		return err
	}
	_, err := io.ReadFull(c, in)
	return err
}

func rr(dial func() (net.Conn, error), conc int, dur time.Duration, size int, reconnect bool, wait time.Duration) {
	var ops, errs atomic.Int64
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr atomic.Value
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]byte, size)
			for j := range out {
				out[j] = byte('a' + j%26)
			}
			in := make([]byte, size)
			local := make([]time.Duration, 0, 4096)
			var c net.Conn
			for time.Now().Before(deadline) {
				t0 := time.Now()
				var err error
				if c == nil {
					c, err = dial()
				}
				if err == nil {
					c.SetDeadline(time.Now().Add(wait))
					err = roundTrip(c, out, in)
				}
				if err == nil && string(in) != string(out) {
					err = errors.New("echo mismatch")
				}
				if err != nil || reconnect {
					if c != nil {
						c.Close()
						c = nil
					}
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ops.Add(1)
				local = append(local, time.Since(t0))
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[int(float64(len(lats)-1)*p)].Microseconds())
	}
	fe, _ := firstErr.Load().(string)
	fmt.Printf("ops_per_s=%.0f p50_us=%.0f p99_us=%.0f errors=%d first_error=%q",
		float64(ops.Load())/dur.Seconds(), pct(0.5), pct(0.99), errs.Load(), fe)
	if n := handshakes.Load(); n > 0 {
		fmt.Printf(" resumed_pct=%.0f", float64(resumed.Load())*100/float64(n))
	}
	fmt.Println()
}

func bulk(dial func() (net.Conn, error), conc int, dur time.Duration, size int) {
	var bytes, errs atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial()
			if err != nil {
				errs.Add(1)
				return
			}
			defer c.Close()
			c.SetDeadline(deadline.Add(5 * time.Second))
			done := make(chan struct{})
			go func() { // reader counts echoed bytes
				defer close(done)
				buf := make([]byte, 256*1024)
				for {
					n, err := c.Read(buf)
					bytes.Add(int64(n))
					if err != nil || time.Now().After(deadline) {
						return
					}
				}
			}()
			out := make([]byte, size)
			for time.Now().Before(deadline) {
				if _, err := c.Write(out); err != nil {
					errs.Add(1)
					break
				}
			}
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			<-done
		}()
	}
	wg.Wait()
	fmt.Printf("echo_MBps=%.1f errors=%d\n", float64(bytes.Load())/dur.Seconds()/1e6, errs.Load())
}

func hold(dial func() (net.Conn, error), conc int, dur time.Duration) {
	conns := make([]net.Conn, 0, conc)
	var errs int
	for i := 0; i < conc; i++ {
		c, err := dial()
		if err != nil {
			errs++
			continue
		}
		// one round trip proves the connection goes through to the upstream
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b := []byte("x")
		if err := roundTrip(c, b, make([]byte, 1)); err != nil {
			errs++
			c.Close()
			continue
		}
		c.SetDeadline(time.Time{})
		conns = append(conns, c)
	}
	fmt.Printf("held=%d errors=%d\n", len(conns), errs)
	time.Sleep(dur)
	for _, c := range conns {
		c.Close()
	}
}
