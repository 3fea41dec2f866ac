// Package errlog is the error log: a log/slog handler that writes nginx's
// error-log lines, shared by the server, the stream engine and the plugin
// runloop.
//
//	2026/11/25 20:32:11 [error] 1234#0: *7 no Route found with those values, client: 10.0.0.1, server: 127.0.0.1:5555
//
// *7 is the connection number (the Conn attribute), and every other
// attribute follows the message as ", key: value", the way nginx adds a
// connection's context to its lines.
package errlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
)

// nginx's eight levels, on slog's scale: debug, info, warn and error are
// slog's own; notice, crit, alert and emerg sit between and above them.
const (
	LevelDebug  = slog.LevelDebug
	LevelInfo   = slog.LevelInfo
	LevelNotice = slog.Level(2)
	LevelWarn   = slog.LevelWarn
	LevelError  = slog.LevelError
	LevelCrit   = slog.Level(12)
	LevelAlert  = slog.Level(16)
	LevelEmerg  = slog.Level(20)
)

var levels = []struct {
	level slog.Level
	name  string
}{
	{LevelDebug, "debug"}, {LevelInfo, "info"}, {LevelNotice, "notice"}, {LevelWarn, "warn"},
	{LevelError, "error"}, {LevelCrit, "crit"}, {LevelAlert, "alert"}, {LevelEmerg, "emerg"},
}

// LevelName is nginx's name of a level: the name of the nginx level at or
// below it.
func LevelName(l slog.Level) string {
	name := levels[0].name
	for _, lv := range levels {
		if l >= lv.level {
			name = lv.name
		}
	}
	return name
}

// ParseLevel maps a log_level name to its level; unknown names are notice.
func ParseLevel(name string) slog.Level {
	for _, lv := range levels {
		if lv.name == name {
			return lv.level
		}
	}
	return LevelNotice
}

// NginxLevel is the level of nginx's numeric code (ngx.STDERR 0, ngx.EMERG
// 1 ... ngx.DEBUG 8, as plugins pass it to ngx.log); stderr lines are
// written whatever the level, as emerg.
func NginxLevel(code int) slog.Level {
	switch {
	case code <= 1:
		return LevelEmerg
	case code >= 8:
		return LevelDebug
	}
	return []slog.Level{2: LevelAlert, 3: LevelCrit, 4: LevelError, 5: LevelWarn, 6: LevelNotice, 7: LevelInfo}[code]
}

// ConnKey is the attribute key of the connection number.
const ConnKey = "connection"

// Conn is the attribute of a line about connection id: "*id " before the
// message.
func Conn(id uint64) slog.Attr { return slog.Uint64(ConnKey, id) }

// Log is the error log's destination and level, which change on reload.
// It is safe for concurrent use.
type Log struct {
	level slog.LevelVar
	mu    sync.Mutex // guards w, file and path
	w     io.Writer
	file  io.Closer // what Reopen opened, closed when replaced
	path  string
	pid   int
}

// New returns the log writing lines at level and above to w, and its
// logger.
func New(w io.Writer, level slog.Level) (*Log, *slog.Logger) {
	l := &Log{w: w, pid: os.Getpid()}
	l.level.Set(level)
	return l, slog.New(&handler{log: l})
}

// SetLevel changes the level lines must reach to be written.
func (l *Log) SetLevel(level slog.Level) { l.level.Set(level) }

// Reopen points the log at path (appending) with level, unless it already
// writes there. An empty path keeps the current writer.
func (l *Log) Reopen(path string, level slog.Level) error {
	l.level.Set(level)
	if path == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if path == l.path {
		return nil
	}
	w, file, err := OpenFile(path)
	if err != nil {
		return err
	}
	if l.file != nil {
		l.file.Close()
	}
	l.w, l.file, l.path = w, file, path
	return nil
}

func (l *Log) write(line []byte) {
	l.mu.Lock()
	l.w.Write(line)
	l.mu.Unlock()
}

var _ slog.Handler = (*handler)(nil)

// handler is the slog.Handler of a Log: conn and tail are what With added
// (the connection number and ", key: value" pairs).
type handler struct {
	log  *Log
	conn uint64
	tail []byte
}

func (h *handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.log.level.Level()
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	conn, tail := h.conn, h.tail
	if r.NumAttrs() > 0 {
		tail = append([]byte(nil), tail...)
		r.Attrs(func(a slog.Attr) bool {
			conn, tail = appendAttr(conn, tail, a)
			return true
		})
	}
	b := make([]byte, 0, 64+len(r.Message)+len(tail))
	b = r.Time.AppendFormat(b, "2006/01/02 15:04:05")
	b = append(b, " ["...)
	b = append(b, LevelName(r.Level)...)
	b = append(b, "] "...)
	b = strconv.AppendInt(b, int64(h.log.pid), 10)
	b = append(b, "#0: "...)
	if conn != 0 {
		b = append(b, '*')
		b = strconv.AppendUint(b, conn, 10)
		b = append(b, ' ')
	}
	b = append(b, r.Message...)
	b = append(b, tail...)
	h.log.write(append(b, '\n'))
	return nil
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := &handler{log: h.log, conn: h.conn, tail: append([]byte(nil), h.tail...)}
	for _, a := range attrs {
		c.conn, c.tail = appendAttr(c.conn, c.tail, a)
	}
	return c
}

// WithGroup keeps the handler: nginx's lines have no groups.
func (h *handler) WithGroup(string) slog.Handler { return h }

func appendAttr(conn uint64, tail []byte, a slog.Attr) (uint64, []byte) {
	if a.Key == ConnKey && a.Value.Kind() == slog.KindUint64 {
		return a.Value.Uint64(), tail
	}
	return conn, fmt.Appendf(tail, ", %s: %s", a.Key, a.Value.Resolve())
}

// OpenFile opens path for appending, creating it; /dev/stdout and
// /dev/stderr are the process's own streams, which are never closed. The
// closer is nil for those.
func OpenFile(path string) (io.Writer, io.Closer, error) {
	switch path {
	case "/dev/stdout":
		return os.Stdout, nil, nil
	case "/dev/stderr":
		return os.Stderr, nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("could not open log file: %w", err)
	}
	return f, f, nil
}
