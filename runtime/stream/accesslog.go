package stream

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/tlsmgr"
)

// Record is what one session leaves for the access log and the log hook.
type Record struct {
	ID            uint64
	Protocol      string         // "TCP" or "UDP", as nginx's $protocol
	Remote        netip.AddrPort // the client, as a PROXY header names it
	Server        netip.AddrPort // the address that accepted the session
	Status        int
	BytesSent     int64 // to the client
	BytesReceived int64 // from the client
	Start, End    time.Time
	SNI           string
	TLS           *tls.ConnectionState // terminated TLS, else nil

	Tries                []Try // one per connect attempt
	UpstreamConnectTimes []time.Duration
	UpstreamBytesSent    int64
	UpstreamBytesRecv    int64
	UpstreamFirstByte    time.Time // the upstream's first byte came; zero: none
}

// connectStart is when try i began to connect.
func (r *Record) connectStart(i int) time.Time { return r.Tries[i].Start.Add(r.Tries[i].Latency) }

// logVariable renders one nginx stream variable of a session.
type logVariable func(b []byte, s *Record) []byte

var logVariables = map[string]logVariable{
	"remote_addr":    func(b []byte, s *Record) []byte { return s.Remote.Addr().AppendTo(b) },
	"remote_port":    func(b []byte, s *Record) []byte { return strconv.AppendUint(b, uint64(s.Remote.Port()), 10) },
	"server_addr":    func(b []byte, s *Record) []byte { return s.Server.Addr().AppendTo(b) },
	"server_port":    func(b []byte, s *Record) []byte { return strconv.AppendUint(b, uint64(s.Server.Port()), 10) },
	"protocol":       func(b []byte, s *Record) []byte { return append(b, s.Protocol...) },
	"status":         func(b []byte, s *Record) []byte { return strconv.AppendInt(b, int64(s.Status), 10) },
	"bytes_sent":     func(b []byte, s *Record) []byte { return strconv.AppendInt(b, s.BytesSent, 10) },
	"bytes_received": func(b []byte, s *Record) []byte { return strconv.AppendInt(b, s.BytesReceived, 10) },
	"session_time":   func(b []byte, s *Record) []byte { return appendSeconds(b, s.End.Sub(s.Start)) },
	"time_local":     func(b []byte, s *Record) []byte { return s.End.AppendFormat(b, "02/Jan/2006:15:04:05 -0700") },
	"time_iso8601":   func(b []byte, s *Record) []byte { return s.End.AppendFormat(b, "2006-01-02T15:04:05-07:00") },
	"msec": func(b []byte, s *Record) []byte {
		return strconv.AppendFloat(b, float64(s.End.UnixMilli())/1000, 'f', 3, 64)
	},
	"connection":      func(b []byte, s *Record) []byte { return strconv.AppendUint(b, s.ID, 10) },
	"pid":             func(b []byte, s *Record) []byte { return strconv.AppendInt(b, int64(os.Getpid()), 10) },
	"hostname":        func(b []byte, s *Record) []byte { return append(b, hostname...) },
	"ssl_server_name": func(b []byte, s *Record) []byte { return append(b, s.SNI...) },
	"upstream_addr":   func(b []byte, s *Record) []byte { return appendTries(b, s.Tries) },
	"ssl_protocol": func(b []byte, s *Record) []byte {
		if s.TLS == nil {
			return b
		}
		return append(b, strings.Replace(tls.VersionName(s.TLS.Version), "TLS 1.", "TLSv1.", 1)...)
	},
	"ssl_cipher": func(b []byte, s *Record) []byte {
		if s.TLS == nil {
			return b
		}
		return append(b, tls.CipherSuiteName(s.TLS.CipherSuite)...)
	},
	"ssl_alpn_protocol": func(b []byte, s *Record) []byte {
		return appendTLS(b, s, func(cs *tls.ConnectionState) string { return cs.NegotiatedProtocol })
	},
	"ssl_client_verify":      func(b []byte, s *Record) []byte { return append(b, ClientIdentity(s).Verify...) },
	"ssl_client_s_dn":        func(b []byte, s *Record) []byte { return append(b, ClientIdentity(s).SubjectDN...) },
	"ssl_client_i_dn":        func(b []byte, s *Record) []byte { return append(b, ClientIdentity(s).IssuerDN...) },
	"ssl_client_serial":      func(b []byte, s *Record) []byte { return append(b, ClientIdentity(s).Serial...) },
	"ssl_client_fingerprint": func(b []byte, s *Record) []byte { return append(b, ClientIdentity(s).Fingerprint...) },
	// The upstream_* values are nginx's, one per try; a try that did not
	// connect has no connect or first-byte time ("-") and moved 0 bytes.
	"upstream_connect_time": func(b []byte, s *Record) []byte {
		return appendPerTry(b, s, func(b []byte, i int) []byte {
			switch {
			case !s.Tries[i].Connected:
				return append(b, '-')
			case i < len(s.UpstreamConnectTimes):
				return appendSeconds(b, s.UpstreamConnectTimes[i])
			}
			return appendSeconds(b, 0) // UDP connects at once and records none
		})
	},
	"upstream_first_byte_time": func(b []byte, s *Record) []byte {
		return appendPerTry(b, s, func(b []byte, i int) []byte {
			if !s.Tries[i].Connected || s.UpstreamFirstByte.IsZero() {
				return append(b, '-')
			}
			return appendSeconds(b, s.UpstreamFirstByte.Sub(s.connectStart(i)))
		})
	},
	"upstream_session_time": func(b []byte, s *Record) []byte {
		return appendPerTry(b, s, func(b []byte, i int) []byte {
			switch {
			case s.Tries[i].Connected:
				return appendSeconds(b, s.End.Sub(s.connectStart(i)))
			case i < len(s.UpstreamConnectTimes): // until the try failed
				return appendSeconds(b, s.UpstreamConnectTimes[i])
			}
			return append(b, '-')
		})
	},
	"upstream_bytes_sent": func(b []byte, s *Record) []byte {
		return appendPerTry(b, s, func(b []byte, i int) []byte { return appendTryBytes(b, s.Tries[i], s.UpstreamBytesSent) })
	},
	"upstream_bytes_received": func(b []byte, s *Record) []byte {
		return appendPerTry(b, s, func(b []byte, i int) []byte { return appendTryBytes(b, s.Tries[i], s.UpstreamBytesRecv) })
	},
}

// appendPerTry writes value(i) for each try i, comma-separated.
func appendPerTry(b []byte, s *Record, value func(b []byte, i int) []byte) []byte {
	for i := range s.Tries {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = value(b, i)
	}
	return b
}

// appendTryBytes writes a try's bytes: the session's for the try that
// connected, 0 for the others.
func appendTryBytes(b []byte, t Try, n int64) []byte {
	if !t.Connected {
		n = 0
	}
	return strconv.AppendInt(b, n, 10)
}

var hostname, _ = os.Hostname()

// appendTries writes $upstream_addr: the peers tried, comma-separated.
func appendTries(b []byte, tries []Try) []byte {
	for i, t := range tries {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, t.Addr...)
	}
	return b
}

func appendTLS(b []byte, s *Record, f func(*tls.ConnectionState) string) []byte {
	if s.TLS == nil {
		return b
	}
	return append(b, f(s.TLS)...)
}

// ClientIdentity is the client certificate of a terminated session, as
// nginx's $ssl_client_* variables show it; empty without TLS, where
// those variables are unset.
func ClientIdentity(s *Record) tlsmgr.ClientIdentity {
	if s.TLS == nil {
		return tlsmgr.ClientIdentity{}
	}
	return tlsmgr.ClientIdentityOf(*s.TLS)
}

// appendSeconds writes d as nginx does: seconds with millisecond precision.
func appendSeconds(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, d.Seconds(), 'f', 3, 64)
}

// LogFormat is a compiled access-log format: literal text and variables.
type LogFormat []logPart

type logPart struct {
	text  string
	v     logVariable
	unset unsetRule
}

// unsetRule says whether a variable's value is nginx's "not found", which
// the access log writes as "-" and ngx.var reads as nil.
type unsetRule func(r *Record, value []byte) bool

// unsetRuleOf is nginx's rule for name: the ssl_* variables are unset
// without TLS, and when empty (no SNI, client certificate or ALPN); the
// upstream_* ones before a peer was tried. nil: always set.
func unsetRuleOf(name string) unsetRule {
	switch {
	case strings.HasPrefix(name, "ssl_"):
		return func(r *Record, value []byte) bool { return r.TLS == nil || len(value) == 0 }
	case strings.HasPrefix(name, "upstream_"):
		return func(r *Record, _ []byte) bool { return len(r.Tries) == 0 }
	}
	return nil
}

// variable is the variable name as a format part; false when nginx
// has no such variable.
func variable(name string) (logPart, bool) {
	v, ok := logVariables[name]
	return logPart{v: v, unset: unsetRuleOf(name)}, ok
}

// appendValue appends the variable's value to b and reports whether it is
// set; an unset one appends nothing.
func (p logPart) appendValue(b []byte, r *Record) ([]byte, bool) {
	v := p.v(b, r)
	if p.unset != nil && p.unset(r, v[len(b):]) {
		return b, false
	}
	return v, true
}

// CompileLogFormat parses $name and ${name} references; an unknown
// variable is an error, as nginx refuses it at start.
func CompileLogFormat(f string) (LogFormat, error) {
	var out LogFormat
	for f != "" {
		i := strings.IndexByte(f, '$')
		if i < 0 {
			out = append(out, logPart{text: f})
			break
		}
		if i > 0 {
			out = append(out, logPart{text: f[:i]})
		}
		f = f[i+1:]
		var name string
		if strings.HasPrefix(f, "{") {
			end := strings.IndexByte(f, '}')
			if end < 0 {
				return nil, fmt.Errorf("the closing bracket in \"%s\" variable is missing", f)
			}
			name, f = f[1:end], f[end+1:]
		} else {
			end := 0
			for end < len(f) && (f[end] == '_' || f[end] >= 'a' && f[end] <= 'z' || f[end] >= 'A' && f[end] <= 'Z' || f[end] >= '0' && f[end] <= '9') {
				end++
			}
			name, f = f[:end], f[end:]
		}
		p, ok := variable(name)
		if !ok {
			return nil, fmt.Errorf("unknown \"%s\" variable", name)
		}
		out = append(out, p)
	}
	return out, nil
}

func (f LogFormat) appendLine(b []byte, s *Record) []byte {
	for _, p := range f {
		if p.v != nil {
			var set bool
			if b, set = p.appendValue(b, s); !set {
				b = append(b, '-')
			}
		} else {
			b = append(b, p.text...)
		}
	}
	return append(b, '\n')
}

// AccessLog writes access-log lines from a goroutine of its own, so a slow
// disk never holds a connection. When its queue is full, lines are dropped
// and counted rather than blocking.
type AccessLog struct {
	lines   chan []byte
	w       io.Writer
	closer  io.Closer
	dropped atomic.Int64
	done    chan struct{}
	once    sync.Once
}

// NewAccessLog opens the access log at path.
func NewAccessLog(path string) (*AccessLog, error) {
	w, closer, err := errlog.OpenFile(path)
	if err != nil {
		return nil, err
	}
	a := &AccessLog{lines: make(chan []byte, 4096), w: w, closer: closer, done: make(chan struct{})}
	go a.writeLoop()
	return a, nil
}

// Write queues one line.
func (a *AccessLog) Write(line []byte) {
	select {
	case a.lines <- line:
	default:
		a.dropped.Add(1)
	}
}

func (a *AccessLog) writeLoop() {
	defer close(a.done)
	bw := bufio.NewWriterSize(a.w, 64<<10)
	for line := range a.lines {
		bw.Write(line)
		if len(a.lines) == 0 {
			bw.Flush()
		}
	}
	bw.Flush()
}

// Close flushes what is queued and closes the file.
func (a *AccessLog) Close() {
	a.once.Do(func() {
		close(a.lines)
		<-a.done
		if a.closer != nil {
			a.closer.Close()
		}
	})
}

// ClientTLSVersion is $ssl_protocol: the terminated TLS version as nginx
// names it ("TLSv1.3"), empty without TLS.
func ClientTLSVersion(r *Record) string { return string(logVariables["ssl_protocol"](nil, r)) }

// ClientTLSCipher is $ssl_cipher, empty without TLS.
func ClientTLSCipher(r *Record) string { return string(logVariables["ssl_cipher"](nil, r)) }
