// Package errlog writes nginx-style error-log lines, shared by the server,
// the stream engine and the plugin runloop.
package errlog

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
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

// ParseLevel maps a log_level name to its Level; unknown names are notice.
func ParseLevel(name string) Level {
	for i, n := range levelNames {
		if n == name {
			return Level(i)
		}
	}
	return LevelNotice
}

// Log writes nginx-style error-log lines:
//
//	2026/11/25 20:32:11 [error] 1234#0: *7 message
//
// where *7 is the connection number, when there is one. It is safe for
// concurrent use; the level and the destination change on reload.
type Log struct {
	level atomic.Int32
	mu    sync.Mutex // guards w, file and path
	w     io.Writer
	file  io.Closer // what reopen opened, closed when replaced
	path  string
	pid   int
}

// New returns a log writing to w the lines at level and above.
func New(w io.Writer, level Level) *Log {
	l := &Log{w: w, pid: os.Getpid()}
	l.level.Store(int32(level))
	return l
}

// Enabled reports whether lines at level are written.
func (l *Log) Enabled(level Level) bool { return level >= Level(l.level.Load()) }

// Logf writes one line for connection conn (0 for none).
func (l *Log) Logf(level Level, conn uint64, format string, args ...any) {
	if !l.Enabled(level) {
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

// Reopen points the log at path (appending), unless it already writes
// there. An empty path keeps the current writer.
func (l *Log) Reopen(path string, level Level) error {
	l.level.Store(int32(level))
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

// SetLevel changes the level lines must reach to be written.
func (l *Log) SetLevel(level Level) { l.level.Store(int32(level)) }
