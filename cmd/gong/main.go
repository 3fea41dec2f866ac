// Command gong is a Kong-compatible layer-4 proxy. Its verbs and flags are
// Kong's: start, stop, quit, reload, restart, health, check, prepare,
// config, version.
//
// This is the only package that exits the process.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// version is gong's release, set at build time with -ldflags "-X main.version=...".
var version = "0.1.0"

// command is one verb of the CLI.
type command struct {
	usage string // first line of --help, after "Usage: gong "
	help  string // the rest of --help
	run   func(cx *cmdContext) error
}

var commands = map[string]command{
	"start":   startCommand,
	"stop":    stopCommand,
	"quit":    quitCommand,
	"reload":  reloadCommand,
	"restart": restartCommand,
	"health":  healthCommand,
	"check":   checkCommand,
	"prepare": prepareCommand,
	"config":  configCommand,
	"version": versionCommand,

	"migrations": migrationsCommand,
}

// cmdContext carries one invocation's parsed flags and streams.
type cmdContext struct {
	fs      *flag.FlagSet
	args    []string // positional arguments
	stdout  io.Writer
	stderr  io.Writer
	env     []string
	verbose bool
	debug   bool

	conf    string
	prefix  string
	timeout int
	wait    int
	all     bool

	migrations migrationFlags
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Environ()))
}

// exitError ends a command with a status and no further message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// run executes one command line and returns the process exit status.
func run(argv []string, stdout, stderr io.Writer, env []string) int {
	if len(argv) == 0 || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help" {
		fmt.Fprint(stdout, mainHelp())
		return 0
	}
	name := argv[0]
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprint(stderr, mainHelp())
		fmt.Fprintf(stderr, "No such command: %s\n", name)
		return 1
	}
	cx := &cmdContext{stdout: stdout, stderr: stderr, env: env}
	cx.fs = flag.NewFlagSet(name, flag.ContinueOnError)
	cx.fs.SetOutput(io.Discard)
	cx.fs.BoolVar(&cx.verbose, "v", false, "verbose")
	cx.fs.BoolVar(&cx.debug, "vv", false, "debug")
	addFlags(name, cx)
	positional, err := parseInterleaved(cx.fs, argv[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: gong %s\n\n%s", cmd.usage, cmd.help)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n\nUsage: gong %s\n", err, cmd.usage)
		return 1
	}
	cx.args = positional
	if err := cmd.run(cx); err != nil {
		var code exitError
		if errors.As(err, &code) {
			return int(code)
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		if !cx.verbose && !cx.debug {
			fmt.Fprint(stderr, "\n  Run with --v (verbose) or --vv (debug) for more details\n")
		}
		return 1
	}
	return 0
}

// addFlags declares the flags a verb takes, under Kong's short and long names.
func addFlags(name string, cx *cmdContext) {
	fs := cx.fs
	str := func(p *string, short, long string) {
		fs.StringVar(p, short, "", long)
		fs.StringVar(p, long, "", long)
	}
	switch name {
	case "start", "reload", "restart", "prepare", "config":
		str(&cx.conf, "c", "conf")
		str(&cx.prefix, "p", "prefix")
	case "stop", "health":
		str(&cx.prefix, "p", "prefix")
	case "quit":
		str(&cx.prefix, "p", "prefix")
		fs.IntVar(&cx.timeout, "t", 10, "timeout")
		fs.IntVar(&cx.timeout, "timeout", 10, "timeout")
		fs.IntVar(&cx.wait, "w", 0, "wait")
		fs.IntVar(&cx.wait, "wait", 0, "wait")
	case "migrations":
		str(&cx.conf, "c", "conf")
		str(&cx.prefix, "p", "prefix")
		addMigrationFlags(cx)
	case "version":
		fs.BoolVar(&cx.all, "a", false, "all")
		fs.BoolVar(&cx.all, "all", false, "all")
	}
}

// parseInterleaved parses flags wherever they stand among the positional
// arguments, as Kong's lapp does ("gong check kong.conf --v").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func mainHelp() string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Sprintf(`Usage: gong COMMAND [OPTIONS]

gong is a Kong-compatible layer-4 (TCP, TLS, UDP) proxy.

The available commands are:
 %s

Options:
 --v              verbose
 --vv             debug

Run "gong COMMAND --help" for a command's options.
`, strings.Join(names, "\n "))
}
