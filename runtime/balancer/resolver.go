package balancer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// ResolverConfig is kong.conf's dns_* settings.
type ResolverConfig struct {
	// Nameservers are "ip:port" addresses; empty means resolv.conf's.
	Nameservers []string
	// ResolvConf is the resolv.conf read for nameservers, search domains,
	// ndots and the query timeout; a missing file leaves the defaults.
	ResolvConf string
	HostsFile  string   // dns_hostsfile, consulted before DNS; "" for none
	Order      []string // dns_order, upper case: LAST, SRV, A, AAAA, CNAME
	ValidTTL   time.Duration
	StaleTTL   time.Duration
	// NotFoundTTL is how long a name error or an empty answer is
	// remembered; ErrorTTL how long any other failure is, before asking
	// again.
	NotFoundTTL, ErrorTTL time.Duration
	CacheSize             int
	// NoSync lets every caller send its own query for a name and type;
	// by default concurrent callers share one query (dns_no_sync = off).
	NoSync bool
}

// Record is one usable answer: an address (A, AAAA or the hosts file),
// or an SRV record's target, port, weight and priority.
type Record struct {
	Addr     netip.Addr // invalid for SRV
	Target   string     // SRV target name
	Port     int        // SRV port (0: the caller's)
	Weight   int
	Priority int
}

// Answer is the resolution of a name: address records, or SRV records.
type Answer struct {
	Name    string // the name that answered (after search domains)
	SRV     bool
	Records []Record
	// Refresh is when to ask again: the TTL's end, or the retry time of a
	// failed query whose stale answer this is. Zero for the hosts file.
	Refresh time.Time
	turn    atomic.Uint64 // ToIP's rotation over the records
}

// Kong's type names in its "Tried" lists are the query type numbers.
var qtypes = map[string]uint16{"SRV": dns.TypeSRV, "A": dns.TypeA, "AAAA": dns.TypeAAAA, "CNAME": dns.TypeCNAME}

// Resolver resolves names as Kong's DNS client does: the hosts file
// first, then each type of dns_order ("LAST" is the type that answered
// the name last time), through a cache that honours the records' TTLs,
// serves a stale answer while it is refreshed, and remembers failures
// for dns_not_found_ttl or dns_error_ttl. It is safe for concurrent use.
type Resolver struct {
	cfg     ResolverConfig
	servers []string
	search  dns.ClientConfig // Search and Ndots only
	client  dns.Client
	hosts   map[string]*Answer // the hosts file's names, of the families dns_order asks for
	cache   *lru.Cache[cacheKey, *cacheEntry]
	last    *lru.Cache[string, uint16] // the type that answered each name
	flight  singleflight.Group
}

type cacheKey struct {
	name  string
	qtype uint16
}

// cacheEntry is one name and type's last query outcome. A failed query
// that found a stale answer keeps the answer and only moves retryAt.
type cacheEntry struct {
	answer   *Answer // nil when the name has no such records
	err      error   // the failure remembered until expires
	expires  time.Time
	retryAt  time.Time // when a stale answer may be refreshed again
	failures int       // consecutive failed refreshes, for the backoff
	// refreshing is set while a background query refreshes the answer.
	refreshing atomic.Bool
}

// maxRetry caps the backoff of a failing name's queries.
const maxRetry = 30 * time.Second

// backoff is the wait before asking again after failures in a row:
// dns_error_ttl (at least a second), doubling up to maxRetry.
func (r *Resolver) backoff(failures int) time.Duration {
	return min(max(r.cfg.ErrorTTL, time.Second)<<min(max(failures-1, 0), 5), maxRetry)
}

// NewResolver reads the hosts file and resolv.conf and prepares the cache.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	r := &Resolver{cfg: cfg, servers: cfg.Nameservers}
	r.search.Ndots = 1
	timeout := 2 * time.Second
	if cfg.ResolvConf != "" {
		if rc, err := dns.ClientConfigFromFile(cfg.ResolvConf); err == nil {
			r.search.Search, r.search.Ndots = rc.Search, rc.Ndots
			if rc.Timeout > 0 {
				timeout = time.Duration(rc.Timeout) * time.Second
			}
			if len(r.servers) == 0 {
				for _, s := range rc.Servers {
					r.servers = append(r.servers, net.JoinHostPort(s, rc.Port))
				}
			}
		}
	}
	r.client = dns.Client{Timeout: timeout}
	if cfg.HostsFile != "" {
		hosts, err := readHostsFile(cfg.HostsFile)
		if err != nil {
			return nil, err
		}
		r.hosts = map[string]*Answer{}
		for name, addrs := range hosts {
			var recs []Record
			for _, a := range addrs {
				if r.asks(a.Is4(), "A") || r.asks(a.Is6(), "AAAA") {
					recs = append(recs, Record{Addr: a})
				}
			}
			if len(recs) > 0 {
				r.hosts[name] = &Answer{Name: name, Records: recs}
			}
		}
	}
	var err error
	if r.cache, err = lru.New[cacheKey, *cacheEntry](max(cfg.CacheSize, 1)); err != nil {
		return nil, err
	}
	if r.last, err = lru.New[string, uint16](max(cfg.CacheSize, 1)); err != nil {
		return nil, err
	}
	return r, nil
}

// readHostsFile parses an /etc/hosts style file: an address, then names.
func readHostsFile(path string) (map[string][]netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dns_hostsfile: %w", err)
	}
	defer f.Close()
	hosts := map[string][]netip.Addr{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		addr, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		for _, name := range fields[1:] {
			name = strings.ToLower(name)
			hosts[name] = append(hosts[name], addr.Unmap())
		}
	}
	return hosts, sc.Err()
}

// Resolve returns the records of name: an IP literal as is, the hosts
// file's addresses of the families dns_order asks for, else the first
// type of dns_order that has records, for the name and then its search
// domain forms. A cached answer past its TTL is returned as it is while
// a query refreshes it in the background, unless fresh is set: then
// Resolve waits for the query, and falls back to the stale answer only
// when the query fails.
func (r *Resolver) Resolve(ctx context.Context, name string, fresh bool) (*Answer, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		return &Answer{Name: name, Records: []Record{{Addr: a.Unmap()}}}, nil
	}
	if ans := r.hosts[strings.ToLower(strings.TrimSuffix(name, "."))]; ans != nil {
		return ans, nil
	}
	var tried []string
	var last error
	for _, n := range r.search.NameList(strings.ToLower(name)) {
		ans, err := r.resolveName(ctx, n, fresh, &tried, 0)
		if err == nil {
			return ans, nil
		}
		last = err
	}
	if last == nil {
		last = errors.New("dns client error: no dns_order type to query")
	}
	return nil, &ResolveError{Err: last, Tried: tried}
}

// ResolveError is a failed resolution with Kong's account of what was
// tried.
type ResolveError struct {
	Err   error
	Tried []string
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("DNS resolution failed: %v. Tried: [%s]", e.Err, quoteList(e.Tried))
}

func (e *ResolveError) Unwrap() error { return e.Err }

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ",")
}

func (r *Resolver) asks(match bool, qtype string) bool {
	if !match {
		return false
	}
	return slices.Contains(r.cfg.Order, qtype)
}

// resolveName tries dns_order's types for one fully qualified name.
func (r *Resolver) resolveName(ctx context.Context, name string, fresh bool, tried *[]string, depth int) (*Answer, error) {
	var last error
	lastType, hasLast := r.last.Get(name)
	for _, o := range r.cfg.Order {
		qtype := qtypes[o]
		if o == "LAST" {
			if !hasLast {
				continue
			}
			qtype = lastType
		}
		ans, err := r.query(ctx, name, qtype, fresh)
		if err != nil {
			*tried = append(*tried, strings.TrimSuffix(name, ".")+":"+strconv.Itoa(int(qtype))+" - "+err.Error())
			last = err
			continue
		}
		if qtype == dns.TypeCNAME {
			// A CNAME answer names another name, resolved in turn.
			if depth >= 8 {
				last = errors.New("dns client error: CNAME chain too long")
				continue
			}
			if ans, err = r.resolveName(ctx, dns.Fqdn(ans.Records[0].Target), fresh, tried, depth+1); err != nil {
				last = err
				continue
			}
		}
		if !hasLast || lastType != qtype {
			r.last.Add(name, qtype)
		}
		return ans, nil
	}
	return nil, last
}

// query returns the cached outcome of a name and type, asking the
// nameservers when there is none, or when it expired (in the background
// while a stale answer may serve, unless fresh).
func (r *Resolver) query(ctx context.Context, name string, qtype uint16, fresh bool) (*Answer, error) {
	k := cacheKey{name, qtype}
	now := time.Now()
	if e, ok := r.cache.Get(k); ok {
		switch {
		case now.Before(e.expires):
			return e.answer, e.err
		case e.answer != nil && now.Before(e.expires.Add(r.cfg.StaleTTL)):
			if now.Before(e.retryAt) {
				return e.answer, nil // a refresh failed lately: wait before the next
			}
			if !fresh {
				if e.refreshing.CompareAndSwap(false, true) {
					go r.refresh(context.Background(), k)
				}
				return e.answer, nil
			}
		}
	}
	return r.refresh(ctx, k)
}

// refresh queries the nameservers for k and caches the outcome. Callers
// asking for the same name and type at once share one query unless
// dns_no_sync is on. A caller whose ctx ends stops waiting; the query
// still completes for the cache.
func (r *Resolver) refresh(ctx context.Context, k cacheKey) (*Answer, error) {
	do := func() (any, error) {
		qctx, cancel := context.WithTimeout(context.Background(), r.client.Timeout*time.Duration(max(len(r.servers), 1)))
		defer cancel()
		e := r.exchange(qctx, k)
		r.store(k, e)
		return e, nil
	}
	var done <-chan singleflight.Result
	if r.cfg.NoSync {
		own := make(chan singleflight.Result, 1)
		go func() {
			v, _ := do()
			own <- singleflight.Result{Val: v}
		}()
		done = own
	} else {
		done = r.flight.DoChan(k.name+"/"+strconv.Itoa(int(k.qtype)), do)
	}
	select {
	case res := <-done:
		e := res.Val.(*cacheEntry)
		return e.answer, e.err
	case <-ctx.Done():
		return nil, fmt.Errorf("dns client error: %w", ctx.Err())
	}
}

// store caches a query's outcome. A failure other than "no such name or
// records" keeps a stale answer the cache still holds, and backs off
// before the next query, as Kong keeps serving stale records when its
// nameservers fail.
func (r *Resolver) store(k cacheKey, e *cacheEntry) {
	now := time.Now()
	if e.answer == nil && !e.notFound() {
		if old, ok := r.cache.Peek(k); ok && old.answer != nil && now.Before(old.expires.Add(r.cfg.StaleTTL)) {
			kept := &cacheEntry{answer: old.answer, expires: old.expires, failures: old.failures + 1}
			kept.retryAt = now.Add(r.backoff(kept.failures))
			kept.answer = &Answer{Name: old.answer.Name, SRV: old.answer.SRV, Records: old.answer.Records, Refresh: kept.retryAt}
			r.cache.Add(k, kept)
			e.answer, e.err = kept.answer, nil
			return
		}
	}
	r.cache.Add(k, e)
}

// exchange asks each nameserver in turn and words the outcome as Kong
// does.
func (r *Resolver) exchange(ctx context.Context, k cacheKey) *cacheEntry {
	now := time.Now()
	fail := func(err error, ttl time.Duration) *cacheEntry {
		return &cacheEntry{err: err, expires: now.Add(ttl)}
	}
	if len(r.servers) == 0 {
		return fail(errors.New("dns client error: no nameservers"), r.cfg.ErrorTTL)
	}
	m := new(dns.Msg)
	m.SetQuestion(k.name, k.qtype)
	var resp *dns.Msg
	var err error
	for _, s := range r.servers {
		resp, _, err = r.client.ExchangeContext(ctx, m, s)
		if err == nil && resp.Truncated {
			tcp := r.client
			tcp.Net = "tcp"
			resp, _, err = tcp.ExchangeContext(ctx, m, s)
		}
		if err == nil && resp.Rcode != dns.RcodeServerFailure && resp.Rcode != dns.RcodeRefused {
			break
		}
	}
	if err != nil {
		return fail(fmt.Errorf("dns client error: %v", err), r.cfg.ErrorTTL)
	}
	if resp.Rcode != dns.RcodeSuccess {
		err := fmt.Errorf("dns server error: %d %s", resp.Rcode, rcodeText(resp.Rcode))
		if resp.Rcode == dns.RcodeNameError {
			return &cacheEntry{err: notFound{err}, expires: now.Add(r.cfg.NotFoundTTL)}
		}
		return fail(err, r.cfg.ErrorTTL)
	}
	ans := &Answer{Name: k.name, SRV: k.qtype == dns.TypeSRV}
	ttl := uint32(1<<31 - 1)
	for _, rr := range resp.Answer {
		var rec Record
		switch v := rr.(type) {
		case *dns.A:
			if k.qtype != dns.TypeA {
				continue
			}
			rec.Addr = netip.AddrFrom4([4]byte(v.A.To4()))
		case *dns.AAAA:
			if k.qtype != dns.TypeAAAA {
				continue
			}
			rec.Addr = netip.AddrFrom16([16]byte(v.AAAA.To16())).Unmap()
		case *dns.SRV:
			if k.qtype != dns.TypeSRV {
				continue
			}
			rec = Record{Target: strings.TrimSuffix(v.Target, "."), Port: int(v.Port), Weight: int(v.Weight), Priority: int(v.Priority)}
		case *dns.CNAME:
			if k.qtype != dns.TypeCNAME || rr.Header().Name != k.name {
				continue
			}
			rec.Target = v.Target
		default:
			continue
		}
		ans.Records = append(ans.Records, rec)
		ttl = min(ttl, rr.Header().Ttl)
	}
	if len(ans.Records) == 0 {
		return &cacheEntry{err: notFound{errors.New("dns client error: 101 empty record received")}, expires: now.Add(r.cfg.NotFoundTTL)}
	}
	life := time.Duration(ttl) * time.Second
	if r.cfg.ValidTTL > 0 {
		life = r.cfg.ValidTTL
	}
	ans.Refresh = now.Add(life)
	return &cacheEntry{answer: ans, expires: ans.Refresh}
}

// notFound marks a name error or an empty answer: remembered for
// dns_not_found_ttl, and it replaces a stale answer.
type notFound struct{ error }

func (n notFound) Unwrap() error { return n.error }

func (e *cacheEntry) notFound() bool {
	var nf notFound
	return errors.As(e.err, &nf)
}

// rcodeText is the resolver library's wording of a response code, as
// Kong's errors show it.
func rcodeText(rcode int) string {
	switch rcode {
	case dns.RcodeFormatError:
		return "format error"
	case dns.RcodeServerFailure:
		return "server failure"
	case dns.RcodeNameError:
		return "name error"
	case dns.RcodeNotImplemented:
		return "not implemented"
	case dns.RcodeRefused:
		return "refused"
	}
	return "unknown"
}

// ToIP returns the address to connect to for name: A and AAAA answers
// rotate over their addresses; an SRV answer picks a record of the lowest
// priority by weight, with its port (port when the record's is 0), and
// resolves its target in turn.
func (r *Resolver) ToIP(ctx context.Context, name string, port int) (netip.AddrPort, error) {
	for depth := 0; ; depth++ {
		ans, err := r.Resolve(ctx, name, false)
		if err != nil {
			return netip.AddrPort{}, err
		}
		if !ans.SRV {
			rec := ans.Records[ans.turn.Add(1)%uint64(len(ans.Records))]
			return netip.AddrPortFrom(rec.Addr, uint16(port)), nil
		}
		rec := pickSRV(ans.Records)
		if rec.Port != 0 {
			port = rec.Port
		}
		if name = rec.Target; depth >= 8 {
			return netip.AddrPort{}, fmt.Errorf("DNS resolution failed: SRV chain too long at %s", name)
		}
	}
}

// pickSRV chooses among the lowest-priority records at random by
// weight; weight 0 counts as 1.
func pickSRV(recs []Record) Record {
	best := recs[0].Priority
	for _, r := range recs {
		best = min(best, r.Priority)
	}
	total := 0
	for _, r := range recs {
		if r.Priority == best {
			total += max(r.Weight, 1)
		}
	}
	n := rand.IntN(total)
	for _, r := range recs {
		if r.Priority != best {
			continue
		}
		if n -= max(r.Weight, 1); n < 0 {
			return r
		}
	}
	return recs[0]
}
