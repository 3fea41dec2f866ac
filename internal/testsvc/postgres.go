package testsvc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL server for tests: one the test binary started
// from Debian's postgresql package (initdb and pg_ctl into a temporary
// directory, on a free loopback port), or the one the KONG_TEST_PG_HOST,
// _PORT, _USER, _PASSWORD and _DATABASE variables name. Tests get a
// database each (Database), so one server serves a whole test binary.
type Postgres struct {
	Host     string
	Port     int
	User     string
	Password string
	// admin is the database CREATE DATABASE runs in.
	admin string

	bin   string // directory of initdb and pg_ctl; "" for an external server
	dir   string // data directory and socket
	owner string // runs the server commands ("postgres" when run as root)
	seq   atomic.Int64
}

// StartPostgres starts the server, or connects to the external one; call
// Stop when the tests are done (TestMain).
func StartPostgres() (*Postgres, error) {
	if host := os.Getenv("KONG_TEST_PG_HOST"); host != "" {
		port, _ := strconv.Atoi(os.Getenv("KONG_TEST_PG_PORT"))
		if port == 0 {
			port = 5432
		}
		p := &Postgres{Host: host, Port: port, User: envOr("KONG_TEST_PG_USER", "kong"),
			Password: os.Getenv("KONG_TEST_PG_PASSWORD"), admin: envOr("KONG_TEST_PG_DATABASE", "kong")}
		return p, p.ping()
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return nil, fmt.Errorf("no PostgreSQL server: install Debian's postgresql package or set KONG_TEST_PG_HOST")
	}
	sort.Strings(bins)
	p := &Postgres{Host: "127.0.0.1", User: "postgres", admin: "postgres", bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "gong-pg-")
	if err != nil {
		return nil, err
	}
	p.dir = dir
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: the server runs as postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user to start PostgreSQL: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		p.owner = "postgres"
	}
	if out, err := p.command("initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if p.Port, err = freePort(); err != nil {
		return nil, err
	}
	if err := p.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

// command runs one of the server's programs, as the server's owner.
func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	if p.owner != "" {
		return exec.Command("runuser", append([]string{"-u", p.owner, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the server (again, after Stop) and waits until it accepts
// connections.
func (p *Postgres) Start() error {
	if p.bin == "" {
		return fmt.Errorf("the external server (KONG_TEST_PG_HOST) cannot be started by the test")
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", p.Port, p.dir)
	out, err := p.command("pg_ctl", "-D", p.data(), "-o", opts, "-l", filepath.Join(p.dir, "log"), "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return p.ping()
}

// Stop stops the server at once (open connections are closed); the data
// stay for Start.
func (p *Postgres) Stop() error {
	if p.bin == "" {
		return nil
	}
	if out, err := p.command("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// Close stops a server the test started and removes its files.
func (p *Postgres) Close() {
	if p.bin == "" {
		return
	}
	p.Stop()
	os.RemoveAll(p.dir)
}

// ConnString is the libpq connection string of a database.
func (p *Postgres) ConnString(database string) string {
	s := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", p.Host, p.Port, p.User, database)
	if p.Password != "" {
		s += " password=" + p.Password
	}
	return s
}

func (p *Postgres) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.ConnString(p.admin))
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL at %s:%d: %w", p.Host, p.Port, err)
	}
	return conn.Close(ctx)
}

// Database creates an empty database for one test, dropped when the test
// ends, and returns its name.
func (p *Postgres) Database(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("gong_test_%d_%d", os.Getpid(), p.seq.Add(1))
	p.exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { p.exec(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return name
}

func (p *Postgres) exec(t testing.TB, sql string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.ConnString(p.admin))
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
