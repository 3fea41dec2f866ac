package conf

import (
	"testing"
	"time"
)

func TestDatabaseOffByDefault(t *testing.T) {
	c, _, err := load(t, "")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Database
	if d.Strategy != "off" || d.ReadOnly != nil || d.UpdateFrequency != 5*time.Second {
		t.Errorf("database = %+v; want off, no replica, db_update_frequency 5s", d)
	}
	p := d.Postgres
	if p.Host != "127.0.0.1" || p.Port != 5432 || p.Database != "kong" || p.User != "kong" ||
		p.Timeout != 5*time.Second || p.SemaphoreTimeout != time.Minute || p.PoolSize != 0 {
		t.Errorf("pg_* defaults = %+v; want Kong's", p)
	}
}

func TestDatabasePostgresWithReplica(t *testing.T) {
	c, _, err := load(t, "database = postgres\npg_host = db1\npg_port = 6543\npg_password = s'e\\cret\n"+
		"pg_ro_host = db2\npg_ro_user = reader\ndb_update_frequency = 0.5\ndb_update_propagation = 2\n")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Database
	if d.Strategy != "postgres" || d.UpdateFrequency != 500*time.Millisecond || d.UpdatePropagation != 2*time.Second {
		t.Fatalf("database = %+v", d)
	}
	ro := d.ReadOnly
	if ro == nil || ro.Host != "db2" || ro.User != "reader" || ro.Port != 6543 || ro.Database != "kong" || ro.Password != `s'e\cret` {
		t.Fatalf("pg_ro_* = %+v; want db2 and reader, the rest from pg_*", ro)
	}
	want := `host='db1' port=6543 dbname='kong' user='kong' application_name=gong password='s\'e\\cret' sslmode=disable connect_timeout=5`
	if got := d.Postgres.ConnString(); got != want {
		t.Errorf("ConnString() = %s\nwant %s", got, want)
	}
}

func TestDatabaseErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"database = mysql", "database has an invalid value: 'mysql' (postgres, off)"},
		{"pg_port = 70000", "pg_port must be a port number"},
		{"pg_max_concurrent_queries = 1.5", "pg_max_concurrent_queries must be an integer greater than 0"},
		{"pg_ro_backlog = -1", "pg_ro_backlog must be an integer greater than 0"},
		{"db_update_frequency = 0", "db_update_frequency must be greater than 0"},
	} {
		_, _, err := load(t, tc.text+"\n")
		if err == nil || !containsProblem(err, tc.want) {
			t.Errorf("%s: error %v; want %q", tc.text, err, tc.want)
		}
	}
}

func containsProblem(err error, msg string) bool {
	problems, ok := err.(Errors)
	if !ok {
		return false
	}
	for _, p := range problems {
		if p.Msg == msg {
			return true
		}
	}
	return false
}
