package runtime

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/conf"
)

// Level is an nginx error-log level; lower is more verbose.
type Level int32

// The levels of kong.conf log_level.
const (
	LevelDebug Level = iota
	LevelInfo
	LevelNotice
	LevelWarn
	LevelError
	LevelCrit
	LevelAlert
	LevelEmerg
)

var levelNames = [...]string{"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"}

func (l Level) String() string { return levelNames[l] }

// parseLevel maps a log_level name to its Level; unknown names are notice.
func parseLevel(name string) Level {
	for i, n := range levelNames {
		if n == name {
			return Level(i)
		}
	}
	return LevelNotice
}

// errorLog writes nginx-style error-log lines:
//
//	2026/11/25 20:32:11 [error] 1234#0: *7 message
//
// where *7 is the connection number, when there is one. It is safe for
// concurrent use; the level and the destination change on reload.
type errorLog struct {
	level atomic.Int32
	mu    sync.Mutex // guards w, file and path
	w     io.Writer
	file  io.Closer // what reopen opened, closed when replaced
	path  string
	pid   int
}

func newErrorLog(w io.Writer, level Level) *errorLog {
	l := &errorLog{w: w, pid: os.Getpid()}
	l.level.Store(int32(level))
	return l
}

func (l *errorLog) enabled(level Level) bool { return level >= Level(l.level.Load()) }

// logf writes one line for connection conn (0 for none).
func (l *errorLog) logf(level Level, conn uint64, format string, args ...any) {
	if !l.enabled(level) {
		return
	}
	connPart := ""
	if conn != 0 {
		connPart = fmt.Sprintf("*%d ", conn)
	}
	line := fmt.Sprintf("%s [%s] %d#0: %s%s\n", time.Now().Format("2006/01/02 15:04:05"), level, l.pid, connPart, fmt.Sprintf(format, args...))
	l.mu.Lock()
	io.WriteString(l.w, line)
	l.mu.Unlock()
}

// reopenLogs applies kong.conf's error logs: proxy_stream_error_log,
// admin_error_log and status_error_log, at log_level. With
// Options.ErrorLog they all keep writing there.
func (s *Server) reopenLogs(c *conf.Config) error {
	for _, l := range []struct {
		log      *errorLog
		property string
		path     string
	}{{s.log, "proxy_stream_error_log", c.ProxyStreamErrorLog}, {s.adminLog, "admin_error_log", c.AdminErrorLog},
		{s.statusLog, "status_error_log", c.StatusErrorLog}} {
		path := l.path
		if s.opts.ErrorLog != nil {
			path = ""
		}
		if err := l.log.reopen(path, s.level(c)); err != nil {
			return fmt.Errorf("%s: %w", l.property, err)
		}
	}
	return nil
}

// reopen points the log at path (appending), unless it already writes
// there; "off" discards. An empty path keeps the current writer.
func (l *errorLog) reopen(path string, level Level) error {
	l.level.Store(int32(level))
	if path == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if path == l.path {
		return nil
	}
	w, file, err := openLogFile(path)
	if err != nil {
		return err
	}
	if l.file != nil {
		l.file.Close()
	}
	l.w, l.file, l.path = w, file, path
	return nil
}

// openLogFile opens path for appending, creating it; /dev/stdout and
// /dev/stderr are the process's own streams, which are never closed. The
// closer is nil for those.
func openLogFile(path string) (io.Writer, io.Closer, error) {
	switch path {
	case "off":
		return io.Discard, nil, nil
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

// pluginLog is the error log as the PDK's Logger: kong.log and ngx.log
// lines at their nginx level.
type pluginLog struct{ l *errorLog }

func (p pluginLog) Log(level pdk.LogLevel, line string) {
	lv := LevelEmerg
	switch level {
	case pdk.LevelDebug:
		lv = LevelDebug
	case pdk.LevelInfo:
		lv = LevelInfo
	case pdk.LevelNotice:
		lv = LevelNotice
	case pdk.LevelWarn:
		lv = LevelWarn
	case pdk.LevelErr:
		lv = LevelError
	case pdk.LevelCrit:
		lv = LevelCrit
	case pdk.LevelAlert:
		lv = LevelAlert
	}
	p.l.logf(lv, 0, "%s", line)
}
