package limits

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gong-proxy/gong/pdk"
)

// TestMeterHoldsTheRate reads from a real TCP connection whose peer
// writes as fast as it can, through a 1 MiB/s meter, for 3 s: the bytes
// per elapsed second must be within 10% of the rate.
func TestMeterHoldsTheRate(t *testing.T) {
	const rate = 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	down, up, release := NewShaper().Session(pdk.Shaping{DownstreamRate: rate})
	defer release()
	if up != nil {
		t.Fatal("an unlimited direction got a meter")
	}
	r := down.Reader(context.Background(), c)
	start := time.Now()
	c.SetReadDeadline(start.Add(3 * time.Second))
	n, _ := io.Copy(io.Discard, r)
	got := float64(n) / time.Since(start).Seconds()
	if got < 0.9*rate || got > 1.1*rate {
		t.Fatalf("%.0f bytes/s through a %d bytes/s meter", got, rate)
	}
	t.Logf("%.0f bytes/s (%.1f%% of the rate)", got, 100*got/rate)
}

func TestAggregateIsSharedAndReleased(t *testing.T) {
	sh := NewShaper()
	d1, u1, r1 := sh.Session(pdk.Shaping{AggregateRate: 1000, Key: "k", Burst: 100})
	if u1 != nil {
		t.Fatal("aggregate_rate paced the bytes from the client; it is for those to the client")
	}
	d2, _, r2 := sh.Session(pdk.Shaping{AggregateRate: 1000, Key: "k", Burst: 100})
	if d1.buckets[0] != d2.buckets[0] {
		t.Fatal("two sessions of one key got different aggregate buckets")
	}
	r1()
	r1()
	if len(sh.aggs) != 1 {
		t.Fatal("the bucket went while a session still uses it")
	}
	r2()
	if len(sh.aggs) != 0 {
		t.Fatal("the bucket outlived its sessions")
	}
}
