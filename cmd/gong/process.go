package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
)

var startCommand = command{
	usage: "start [OPTIONS]",
	help: `Start gong in the foreground with the given configuration.
It writes <prefix>/.kong_env and <prefix>/pids/gong.pid, serves until it is
stopped (SIGTERM, SIGINT or "gong stop"), quits gracefully on SIGQUIT or
"gong quit", and reloads on SIGHUP or "gong reload".

Options:
 -c,--conf    (optional string) configuration file
 -p,--prefix  (optional string) override prefix directory
`,
	run: runStart,
}

var prepareCommand = command{
	usage: "prepare [OPTIONS]",
	help: `Prepare the prefix directory (logs, pids, .kong_env) without starting.

Options:
 -c,--conf    (optional string) configuration file
 -p,--prefix  (optional string) override prefix directory
`,
	run: func(cx *cmdContext) error {
		c, err := cx.loadConf()
		if err != nil {
			return err
		}
		return preparePrefix(c)
	},
}

var stopCommand = command{
	usage: "stop [OPTIONS]",
	help: `Stop a running gong at once (SIGTERM): open connections are closed.

Options:
 -p,--prefix  (optional string) prefix gong is running at
`,
	run: func(cx *cmdContext) error {
		pid, prefix, err := cx.runningPID()
		if err != nil {
			return err
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			return err
		}
		if !waitExit(pid, 10*time.Second) {
			return fmt.Errorf("gong at %s did not stop", prefix)
		}
		fmt.Fprintln(cx.stdout, "gong stopped")
		return nil
	},
}

var quitCommand = command{
	usage: "quit [OPTIONS]",
	help: `Stop a running gong gracefully (SIGQUIT): it stops accepting connections
and waits for open ones to end, for nginx_main_worker_shutdown_timeout at
most (30s by default), then closes those left and flushes its log queues.
If it still runs after --timeout seconds, it is stopped forcefully (SIGTERM).

Options:
 -p,--prefix   (optional string) prefix gong is running at
 -t,--timeout  (default 10) seconds to wait for connections to end
 -w,--wait     (default 0) seconds to wait before quitting
`,
	run: func(cx *cmdContext) error {
		if cx.timeout < 1 {
			cx.timeout = 1
		}
		pid, _, err := cx.runningPID()
		if err != nil {
			return err
		}
		time.Sleep(time.Duration(cx.wait) * time.Second)
		if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
			return err
		}
		if waitExit(pid, time.Duration(cx.timeout)*time.Second) {
			fmt.Fprintln(cx.stdout, "gong stopped (gracefully)")
			return nil
		}
		syscall.Kill(pid, syscall.SIGTERM)
		waitExit(pid, 10*time.Second)
		fmt.Fprintln(cx.stdout, "Timeout, gong stopped forcefully")
		return nil
	},
}

var reloadCommand = command{
	usage: "reload [OPTIONS]",
	help: `Reload a running gong (SIGHUP): it reads its kong.conf and declarative
configuration again. The configuration is checked first; an invalid one is
reported and the running instance is left alone. New connections use the
new configuration; open ones keep theirs until they end. With -c, the
running instance switches to that kong.conf.

Options:
 -c,--conf    (optional string) configuration file
 -p,--prefix  (optional string) prefix gong is running at
`,
	run: func(cx *cmdContext) error {
		c, err := cx.loadConf()
		if err != nil {
			return err
		}
		if err := checkDeclarative(c); err != nil {
			return err
		}
		pid, err := readPID(c.Prefix)
		if err != nil {
			return err
		}
		if cx.conf != "" {
			abs, _ := filepath.Abs(cx.conf)
			if err := os.WriteFile(filepath.Join(c.Prefix, runtime.ReloadConfFile), []byte(abs), 0o600); err != nil {
				return err
			}
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return err
		}
		fmt.Fprintln(cx.stdout, "gong reloaded")
		return nil
	},
}

var restartCommand = command{
	usage: "restart [OPTIONS]",
	help: `Stop gong if it runs at the prefix, then start it in the foreground.

Options:
 -c,--conf    (optional string) configuration file
 -p,--prefix  (optional string) override prefix directory
`,
	run: func(cx *cmdContext) error {
		c, err := cx.loadConf()
		if err != nil {
			return err
		}
		if pid, err := readPID(c.Prefix); err == nil {
			syscall.Kill(pid, syscall.SIGTERM)
			waitExit(pid, 5*time.Second)
		}
		return runStart(cx)
	},
}

var healthCommand = command{
	usage: "health [OPTIONS]",
	help: `Check that gong is running at the prefix.

Options:
 -p,--prefix  (optional string) prefix gong is running at
`,
	run: func(cx *cmdContext) error {
		_, prefix, err := cx.runningPID()
		if err != nil {
			return err
		}
		fmt.Fprintln(cx.stdout, "gong.......running")
		fmt.Fprintf(cx.stdout, "gong is healthy at %s\n", prefix)
		return nil
	},
}

// loadConf loads kong.conf as the command's flags and environment say,
// printing warnings to stderr.
func (cx *cmdContext) loadConf() (*conf.Config, error) {
	c, warnings, err := conf.Load(cx.confOptions())
	for _, w := range warnings {
		fmt.Fprintf(cx.stderr, "Warning: %v\n", w)
	}
	return c, err
}

// confOptions says where the configuration comes from: -c, the
// environment and -p.
func (cx *cmdContext) confOptions() conf.Options {
	opts := conf.Options{Path: cx.conf, Env: cx.env}
	if cx.prefix != "" {
		opts.Overrides = map[string]string{"prefix": cx.prefix}
	}
	return opts
}

// Exit statuses of "gong start" after a graceful quit that was not clean,
// added together when both happened (docs/cli.md).
const (
	exitSessionsCut = 2 // sessions still open at the deadline were closed
	exitEntriesLost = 4 // log-queue entries were lost
)

// quitStatus is the exit status a graceful quit's outcome gives.
func quitStatus(q *runtime.QuitError) int {
	status := 0
	if q.Cut > 0 {
		status += exitSessionsCut
	}
	if q.Lost > 0 {
		status += exitEntriesLost
	}
	return status
}

// runningPID finds the instance at the prefix given with -p, or at the
// configured prefix.
func (cx *cmdContext) runningPID() (int, string, error) {
	prefix := cx.prefix
	if prefix == "" {
		c, err := cx.loadConf()
		if err != nil {
			return 0, "", err
		}
		prefix = c.Prefix
	}
	prefix, _ = filepath.Abs(prefix)
	if _, err := os.Stat(prefix); err != nil {
		return 0, prefix, fmt.Errorf("no such prefix: %s", prefix)
	}
	pid, err := readPID(prefix)
	return pid, prefix, err
}

func pidFile(prefix string) string { return filepath.Join(prefix, "pids", "gong.pid") }

// readPID returns the pid of the gong running at prefix.
func readPID(prefix string) (int, error) {
	data, err := os.ReadFile(pidFile(prefix))
	if err == nil {
		pid, perr := strconv.Atoi(strings.TrimSpace(string(data)))
		if perr == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("gong is not running at %s", prefix)
}

// waitExit polls until the process is gone or the time is up.
func waitExit(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return syscall.Kill(pid, 0) != nil
}

// preparePrefix creates the prefix folders and writes .kong_env, as
// Kong's prepare does.
func preparePrefix(c *conf.Config) error {
	for _, d := range []string{"", "logs", "pids", "ssl"} {
		if err := os.MkdirAll(filepath.Join(c.Prefix, d), 0o755); err != nil {
			return fmt.Errorf("could not prepare prefix: %w", err)
		}
	}
	return os.WriteFile(filepath.Join(c.Prefix, ".kong_env"), c.KongEnv(), 0o600)
}

func runStart(cx *cmdContext) error {
	c, err := cx.loadConf()
	if err != nil {
		return err
	}
	if _, err := readPID(c.Prefix); err == nil {
		return fmt.Errorf("gong is already running in %s", c.Prefix)
	}
	if err := preparePrefix(c); err != nil {
		return err
	}
	level := ""
	switch {
	case cx.debug:
		level = "debug"
	case cx.verbose:
		level = "info"
	}
	// The server reads the same sources again on reload, maybe from
	// another working directory's point of view: make the path absolute.
	reloadFrom := cx.confOptions()
	if reloadFrom.Path != "" {
		reloadFrom.Path, _ = filepath.Abs(reloadFrom.Path)
	}
	sockets, err := socketActivation()
	if err != nil {
		return err
	}
	srv, err := runtime.New(runtime.Options{Conf: reloadFrom, Config: c, LogLevel: level, Sockets: sockets})
	if err != nil {
		return err
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP)
	defer signal.Stop(signals)
	if err := srv.Start(); err != nil {
		srv.Stop()
		return err
	}
	if unused := sockets.Unused(); len(unused) > 0 {
		// Connections would wait in such a socket's backlog for ever.
		srv.Stop()
		return fmt.Errorf("socket activation: no stream_listen, admin_listen or status_listen entry has the address of the socket on %s", strings.Join(unused, ", "))
	}
	if err := os.WriteFile(pidFile(c.Prefix), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		srv.Stop()
		return err
	}
	defer os.Remove(pidFile(c.Prefix))
	fmt.Fprintln(cx.stdout, "gong started")
	for {
		select {
		case sig := <-signals:
			switch sig {
			case syscall.SIGHUP:
				srv.Reload() // the server logs the outcome; a failed reload keeps the old config
			case syscall.SIGQUIT:
				go srv.Quit()
			default:
				srv.Stop()
			}
		case err := <-srv.Done():
			var quit *runtime.QuitError
			if errors.As(err, &quit) {
				fmt.Fprintf(cx.stderr, "Error: %v\n", quit)
				return exitError(quitStatus(quit))
			}
			if err != nil && !errors.Is(err, runtime.ErrStopped) {
				return err
			}
			return nil
		}
	}
}
