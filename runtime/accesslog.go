package runtime

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gong-proxy/gong/tlsmgr"
)

// session is what one connection (or UDP session) leaves for the access
// log and, later, the log phase.
type session struct {
	id            uint64
	protocol      string // "TCP" or "UDP", as nginx's $protocol
	remoteAddr    string
	remotePort    int
	serverAddr    string
	serverPort    int
	status        int
	bytesSent     int64 // to the client
	bytesReceived int64 // from the client
	start, end    time.Time
	sni           string
	tls           *tls.ConnectionState // terminated TLS, else nil

	upstreamAddrs        []string
	upstreamConnectTimes []time.Duration
	balancerTries        []balancerTry // one per upstreamAddrs entry
	upstreamBytesSent    int64
	upstreamBytesRecv    int64
}

// logVariable renders one nginx stream variable of a session.
type logVariable func(b []byte, s *session) []byte

var logVariables = map[string]logVariable{
	"remote_addr":    func(b []byte, s *session) []byte { return append(b, s.remoteAddr...) },
	"remote_port":    func(b []byte, s *session) []byte { return strconv.AppendInt(b, int64(s.remotePort), 10) },
	"server_addr":    func(b []byte, s *session) []byte { return append(b, s.serverAddr...) },
	"server_port":    func(b []byte, s *session) []byte { return strconv.AppendInt(b, int64(s.serverPort), 10) },
	"protocol":       func(b []byte, s *session) []byte { return append(b, s.protocol...) },
	"status":         func(b []byte, s *session) []byte { return strconv.AppendInt(b, int64(s.status), 10) },
	"bytes_sent":     func(b []byte, s *session) []byte { return strconv.AppendInt(b, s.bytesSent, 10) },
	"bytes_received": func(b []byte, s *session) []byte { return strconv.AppendInt(b, s.bytesReceived, 10) },
	"session_time":   func(b []byte, s *session) []byte { return appendSeconds(b, s.end.Sub(s.start)) },
	"time_local":     func(b []byte, s *session) []byte { return s.end.AppendFormat(b, "02/Jan/2006:15:04:05 -0700") },
	"time_iso8601":   func(b []byte, s *session) []byte { return s.end.AppendFormat(b, "2006-01-02T15:04:05-07:00") },
	"msec": func(b []byte, s *session) []byte {
		return strconv.AppendFloat(b, float64(s.end.UnixMilli())/1000, 'f', 3, 64)
	},
	"connection":      func(b []byte, s *session) []byte { return strconv.AppendUint(b, s.id, 10) },
	"pid":             func(b []byte, s *session) []byte { return strconv.AppendInt(b, int64(os.Getpid()), 10) },
	"hostname":        func(b []byte, s *session) []byte { return append(b, hostname...) },
	"ssl_server_name": func(b []byte, s *session) []byte { return append(b, s.sni...) },
	"upstream_addr":   func(b []byte, s *session) []byte { return append(b, strings.Join(s.upstreamAddrs, ", ")...) },
	"ssl_protocol": func(b []byte, s *session) []byte {
		if s.tls == nil {
			return b
		}
		return append(b, strings.Replace(tls.VersionName(s.tls.Version), "TLS 1.", "TLSv1.", 1)...)
	},
	"ssl_cipher": func(b []byte, s *session) []byte {
		if s.tls == nil {
			return b
		}
		return append(b, tls.CipherSuiteName(s.tls.CipherSuite)...)
	},
	"ssl_alpn_protocol": func(b []byte, s *session) []byte {
		return appendTLS(b, s, func(cs *tls.ConnectionState) string { return cs.NegotiatedProtocol })
	},
	"ssl_client_verify":      func(b []byte, s *session) []byte { return append(b, clientIdentity(s).Verify...) },
	"ssl_client_s_dn":        func(b []byte, s *session) []byte { return append(b, clientIdentity(s).SubjectDN...) },
	"ssl_client_i_dn":        func(b []byte, s *session) []byte { return append(b, clientIdentity(s).IssuerDN...) },
	"ssl_client_serial":      func(b []byte, s *session) []byte { return append(b, clientIdentity(s).Serial...) },
	"ssl_client_fingerprint": func(b []byte, s *session) []byte { return append(b, clientIdentity(s).Fingerprint...) },
	"upstream_connect_time": func(b []byte, s *session) []byte {
		for i, d := range s.upstreamConnectTimes {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendSeconds(b, d)
		}
		return b
	},
	"upstream_bytes_sent":     func(b []byte, s *session) []byte { return strconv.AppendInt(b, s.upstreamBytesSent, 10) },
	"upstream_bytes_received": func(b []byte, s *session) []byte { return strconv.AppendInt(b, s.upstreamBytesRecv, 10) },
}

var hostname, _ = os.Hostname()

func appendTLS(b []byte, s *session, f func(*tls.ConnectionState) string) []byte {
	if s.tls == nil {
		return b
	}
	return append(b, f(s.tls)...)
}

// clientIdentity is the client certificate of a terminated session, as
// nginx's $ssl_client_* variables show it; "NONE" without TLS too.
func clientIdentity(s *session) tlsmgr.ClientIdentity {
	if s.tls == nil {
		return tlsmgr.ClientIdentity{Verify: "NONE"}
	}
	return tlsmgr.ClientIdentityOf(*s.tls)
}

// appendSeconds writes d as nginx does: seconds with millisecond precision.
func appendSeconds(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, d.Seconds(), 'f', 3, 64)
}

// logFormat is a compiled access-log format: literal text and variables.
type logFormat []logPart

type logPart struct {
	text string
	v    logVariable
}

// compileLogFormat parses $name and ${name} references; an unknown
// variable is an error, as nginx refuses it at start.
func compileLogFormat(f string) (logFormat, error) {
	var out logFormat
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
		v, ok := logVariables[name]
		if !ok {
			return nil, fmt.Errorf("unknown \"%s\" variable", name)
		}
		out = append(out, logPart{v: v})
	}
	return out, nil
}

func (f logFormat) appendLine(b []byte, s *session) []byte {
	for _, p := range f {
		if p.v != nil {
			b = p.v(b, s)
		} else {
			b = append(b, p.text...)
		}
	}
	return append(b, '\n')
}

// accessLog writes access-log lines from a goroutine of its own, so a slow
// disk never holds a connection. When its queue is full, lines are dropped
// and counted rather than blocking.
type accessLog struct {
	lines   chan []byte
	w       io.Writer
	closer  io.Closer
	dropped atomic.Int64
	done    chan struct{}
	once    sync.Once
}

func newAccessLog(path string) (*accessLog, error) {
	w, closer, err := openLogFile(path)
	if err != nil {
		return nil, err
	}
	a := &accessLog{lines: make(chan []byte, 4096), w: w, closer: closer, done: make(chan struct{})}
	go a.writeLoop()
	return a, nil
}

func (a *accessLog) write(line []byte) {
	select {
	case a.lines <- line:
	default:
		a.dropped.Add(1)
	}
}

func (a *accessLog) writeLoop() {
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

// close flushes what is queued and closes the file.
func (a *accessLog) close() {
	a.once.Do(func() {
		close(a.lines)
		<-a.done
		if a.closer != nil {
			a.closer.Close()
		}
	})
}
