package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/store/postgres"
)

var migrationsCommand = command{
	usage: "migrations COMMAND [OPTIONS]",
	help: `Manage the database schema (database = postgres): Kong 3.10's core schema,
shared with Kong's own nodes.

The available commands are:
  bootstrap   Bootstrap the database: create the schema.
  up          Run any new migrations.
  finish      Finish running any pending migrations after 'up'.
  list        List executed migrations.
  reset       Reset the database: erase all of its data and tables.
  status      Dump the database migration status in JSON format.

Options:
 -y,--yes                         assume "yes" to prompts and run non-interactively
 -q,--quiet                       suppress all output
 -f,--force                       with bootstrap: reset the database first
 --db-timeout   (optional number) timeout, in seconds, for all database operations
 --lock-timeout (default 60)      accepted
 -c,--conf      (optional string) configuration file
 -p,--prefix    (optional string) override prefix directory
`,
	run: runMigrations,
}

// migrationFlags are the flags of "gong migrations".
type migrationFlags struct {
	yes, quiet, force bool
	dbTimeout         float64
	lockTimeout       int
}

func addMigrationFlags(cx *cmdContext) {
	fs := cx.fs
	for _, name := range []string{"y", "yes"} {
		fs.BoolVar(&cx.migrations.yes, name, false, "yes")
	}
	for _, name := range []string{"q", "quiet"} {
		fs.BoolVar(&cx.migrations.quiet, name, false, "quiet")
	}
	for _, name := range []string{"f", "force"} {
		fs.BoolVar(&cx.migrations.force, name, false, "force")
	}
	fs.Float64Var(&cx.migrations.dbTimeout, "db-timeout", 0, "db timeout")
	fs.IntVar(&cx.migrations.lockTimeout, "lock-timeout", 60, "lock timeout")
}

// openStore connects to the database kong.conf names; database = off is
// an error naming the command.
func (cx *cmdContext) openStore(verb string) (*conf.Config, *postgres.Store, error) {
	c, err := cx.loadConf()
	if err != nil {
		return nil, nil, err
	}
	if c.Database.Strategy != "postgres" {
		return nil, nil, fmt.Errorf("'gong %s' only works with a database (database = postgres); database is %s", verb, c.Database.Strategy)
	}
	db := c.Database
	if t := cx.migrations.dbTimeout; t > 0 {
		db.Postgres.Timeout = time.Duration(t * float64(time.Second))
	}
	s, err := postgres.Open(context.Background(), db, c.NodeID)
	if err != nil {
		return nil, nil, err
	}
	return c, s, nil
}

func runMigrations(cx *cmdContext) error {
	if len(cx.args) == 0 {
		return errors.New("expected a command; see `gong migrations --help`")
	}
	verb := cx.args[0]
	switch verb {
	case "bootstrap", "up", "finish", "list", "reset", "status":
	default:
		return fmt.Errorf("No such command for migrations: %s", verb)
	}
	c, s, err := cx.openStore("migrations " + verb)
	if err != nil {
		return err
	}
	plugins := c.EnabledPlugins(runtime.BundledPlugins)
	defer s.Close()
	ctx := context.Background()
	out := cx.stdout
	say := func(format string, args ...any) {
		if !cx.migrations.quiet {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}
	st, err := s.State(ctx, plugins)
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		return migrationsList(st, say)
	case "status":
		data, _ := json.Marshal(st.StatusJSON())
		fmt.Fprintln(out, string(data))
		return nil
	case "bootstrap":
		if cx.migrations.force && !st.NeedsBootstrap {
			say("Resetting database...")
			if err := s.Reset(ctx); err != nil {
				return err
			}
			say("Database successfully reset")
			st.NeedsBootstrap = true
		}
		if !st.NeedsBootstrap {
			say("Database already bootstrapped")
			return nil
		}
		say("Bootstrapping database...")
		ok, err := s.Bootstrap(ctx, plugins)
		if err != nil {
			return err
		}
		if !ok {
			say("aborted: another node is performing database changes")
			return nil
		}
		say("Database is up-to-date")
		return nil
	case "up":
		if st.NeedsBootstrap {
			return errors.New("Cannot run migrations: " + postgres.NeedsBootstrapMsg)
		}
		if len(st.Pending) > 0 {
			return errors.New("Database has pending migrations; run 'gong migrations finish'")
		}
		if core := st.CoreNew(); len(core) > 0 {
			return olderCore(core)
		}
		// A database Kong bootstrapped lacks gong's own table.
		created, err := s.UpExtensions(ctx)
		if err != nil {
			return err
		}
		ran, err := s.Up(ctx, plugins)
		if err != nil {
			return err
		}
		if !created && len(ran) == 0 {
			say("Database is already up-to-date")
			return nil
		}
		if created {
			say("Migrating gong on database '%s'...", c.Database.Postgres.Database)
			say("gong migrated up to: %s (executed)", postgres.GongMigrations[len(postgres.GongMigrations)-1])
			say("%d migration processed\n%d executed", len(postgres.GongMigrations), len(postgres.GongMigrations))
		}
		if len(ran) > 0 {
			say("%s", postgres.FormatList(ran))
		}
		say("Database is up-to-date")
		return nil
	case "finish":
		if st.NeedsBootstrap {
			return errors.New("Cannot run migrations: " + postgres.NeedsBootstrapMsg)
		}
		if core := st.CorePending(); len(core) > 0 {
			return olderCore(core)
		}
		if len(st.Pending) > 0 {
			if _, err := s.Up(ctx, plugins); err != nil {
				return err
			}
			say("Database is up-to-date")
			return nil
		}
		if len(st.New) > 0 {
			say("\nNew migrations available; run 'gong migrations up' to proceed")
			return nil
		}
		say("No pending migrations to finish")
		return nil
	case "reset":
		if !cx.migrations.yes {
			if !isTerminal(os.Stdin) {
				return errors.New("not a tty: invoke 'reset' non-interactively with the --yes flag")
			}
			if !st.NeedsBootstrap && !confirm(cx, "Are you sure? This operation is irreversible.") {
				say("cancelled")
				return nil
			}
		}
		if st.NeedsBootstrap {
			say("Database not bootstrapped, nothing to reset")
			return exitError(1)
		}
		say("Resetting database...")
		if err := s.Reset(ctx); err != nil {
			return err
		}
		say("Database successfully reset")
		return nil
	}
	return nil
}

// migrationsList prints the state as Kong's "migrations list" does, with
// its exit codes: 3 needs bootstrap, 4 pending, 5 new migrations.
func migrationsList(st *postgres.State, say func(string, ...any)) error {
	if st.NeedsBootstrap {
		say("%s", postgres.NeedsBootstrapMsg)
		return exitError(3)
	}
	sep := ""
	if len(st.Executed) > 0 {
		say("Executed migrations:\n%s", postgres.FormatList(st.Executed))
		sep = "\n"
	}
	if len(st.Pending) > 0 {
		say("%sPending migrations:\n%s", sep, postgres.FormatList(st.Pending))
		sep = "\n"
	}
	if len(st.New) > 0 {
		say("%sNew migrations available:\n%s", sep, postgres.FormatList(st.New))
	}
	switch {
	case len(st.Pending) > 0 && len(st.New) > 0:
		say("")
		say("Database has pending migrations from a previous upgrade, and new migrations from this upgrade")
		say("\nRun 'gong migrations finish' when ready to complete pending migrations")
		return exitError(4)
	case len(st.Pending) > 0:
		say("\nRun 'gong migrations finish' when ready")
		return exitError(4)
	case len(st.New) > 0:
		say("\nRun 'gong migrations up' to proceed")
		return exitError(5)
	}
	return nil
}

// olderCore refuses to run core migrations between Kong versions: gong
// creates Kong 3.10's schema at once, but upgrading an older core runs
// Kong's own Lua migrations. (Plugins' migrations gong runs itself.)
func olderCore(names []string) error {
	return fmt.Errorf("the database's core schema is older than Kong 3.10 (migrations %s have not run): "+
		"upgrade it with Kong 3.10's 'kong migrations up' and 'kong migrations finish'", strings.Join(names, ", "))
}

// isTerminal reports whether f is a terminal (not /dev/null or a pipe).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// confirm asks a yes/no question on the terminal, three times at most, as
// Kong's prompt does.
func confirm(cx *cmdContext, q string) bool {
	in := bufio.NewScanner(os.Stdin)
	for range 3 {
		fmt.Fprintf(cx.stdout, "> %s [y/n] ", q)
		if !in.Scan() {
			return false
		}
		switch in.Text() {
		case "y", "Y", "yes", "YES":
			return true
		case "n", "N", "no", "NO":
			return false
		}
	}
	return false
}
