// Package dnstest runs a nameserver on loopback whose records a test
// sets, for tests of names resolved as upstream targets, as
// net/http/httptest runs HTTP servers.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Zone is a UDP nameserver on loopback that answers from the records set
// on it: NXDOMAIN for a name it has no record of, an empty answer for a
// name it has only other types of.
type Zone struct {
	Addr    string // host:port it listens on
	queries atomic.Int64

	mu      sync.Mutex
	records map[string][]dns.RR // by "name type", e.g. "a.test. A"
	fail    bool                // answer SERVFAIL
	mute    bool                // answer nothing
}

// Start runs a Zone with no records until the test ends.
func Start(t testing.TB) *Zone {
	t.Helper()
	z := &Zone{records: map[string][]dns.RR{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.Addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(z.serve)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return z
}

func (z *Zone) serve(w dns.ResponseWriter, req *dns.Msg) {
	z.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	z.mu.Lock()
	if z.mute {
		z.mu.Unlock()
		return
	}
	switch rrs, ok := z.records[q.Name+" "+dns.TypeToString[q.Qtype]]; {
	case z.fail:
		m.Rcode = dns.RcodeServerFailure
	case ok:
		m.Answer = rrs
	case !z.unsyncedKnown(q.Name):
		m.Rcode = dns.RcodeNameError
	}
	z.mu.Unlock()
	w.WriteMsg(m)
}

func (z *Zone) unsyncedKnown(name string) bool {
	for k := range z.records {
		if strings.HasPrefix(k, name+" ") {
			return true
		}
	}
	return false
}

// Set replaces the records of each name and type among rrs, given in
// zone-file syntax ("a.test. 30 IN A 127.0.0.2").
func (z *Zone) Set(t testing.TB, rrs ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	cleared := map[string]bool{}
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		k := rr.Header().Name + " " + dns.TypeToString[rr.Header().Rrtype]
		if !cleared[k] {
			z.records[k], cleared[k] = nil, true
		}
		z.records[k] = append(z.records[k], rr)
	}
}

// SetFail makes every answer SERVFAIL, or stops that.
func (z *Zone) SetFail(fail bool) { z.mu.Lock(); z.fail = fail; z.mu.Unlock() }

// SetMute makes the zone answer nothing, or stops that.
func (z *Zone) SetMute(mute bool) { z.mu.Lock(); z.mute = mute; z.mu.Unlock() }

// Queries is the number of queries received so far.
func (z *Zone) Queries() int64 { return z.queries.Load() }
