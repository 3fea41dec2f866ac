package conf

import (
	"strconv"
	"time"
)

// Database is the datastore part of kong.conf: database, the pg_* and
// pg_ro_* connection settings and the db_* cache and propagation settings.
type Database struct {
	// Strategy is "off" (DB-less, from a declarative configuration) or
	// "postgres".
	Strategy string
	// Postgres is where reads and writes go; ReadOnly, when pg_ro_host is
	// set, is where reads go instead. Unset pg_ro_* keys take the value of
	// their pg_* key, as in Kong.
	Postgres Postgres
	ReadOnly *Postgres
	// UpdateFrequency is db_update_frequency: how often the node polls
	// cluster_events for changes made by other nodes.
	UpdateFrequency time.Duration
	// UpdatePropagation is db_update_propagation: how long a change may
	// take to become visible to every reader (replication lag); polls look
	// that far back, and changes are applied that much later.
	UpdatePropagation time.Duration
	// CacheTTL, CacheNegTTL, ResurrectTTL and CacheWarmupEntities are
	// Kong's entity cache settings; gong keeps whole generations in memory,
	// so they are validated and kept only for compatibility.
	CacheTTL            time.Duration
	CacheNegTTL         time.Duration
	ResurrectTTL        time.Duration
	CacheWarmupEntities []string
}

// Postgres is one PostgreSQL connection setting (pg_* or pg_ro_*).
type Postgres struct {
	Host     string
	Port     int
	Database string
	// Schema, when not empty, is set as the connection's search_path.
	Schema   string
	Timeout  time.Duration // pg_timeout: connect and query timeout
	User     string
	Password string
	SSL      bool
	// SSLVerify checks the server's certificate against
	// lua_ssl_trusted_certificate.
	SSLVerify bool
	// MaxConcurrentQueries bounds the queries in flight (0: no bound) and
	// SemaphoreTimeout how long a query waits for its turn.
	MaxConcurrentQueries int
	SemaphoreTimeout     time.Duration
	// KeepaliveTimeout is how long an idle connection stays open (0: the
	// driver's default); PoolSize is the most connections kept (0: the
	// driver's default); Backlog is accepted for compatibility.
	KeepaliveTimeout time.Duration
	PoolSize         int
	Backlog          int
}

func (t *typer) database() Database {
	d := Database{Strategy: t.str("database")}
	switch d.Strategy {
	case "off", "postgres":
	case "cassandra":
		t.fail("database", "Cassandra as a datastore for Kong is not supported in versions 3.4 and above. Please use Postgres.")
	default:
		t.fail("database", "database has an invalid value: '%s' (postgres, off)", d.Strategy)
	}
	d.Postgres = t.postgres("pg_", nil)
	if _, ok := t.lookup("pg_ro_host"); ok {
		ro := t.postgres("pg_ro_", &d.Postgres)
		d.ReadOnly = &ro
	} else {
		t.postgres("pg_ro_", &d.Postgres) // validated all the same, as Kong does
	}
	d.UpdateFrequency = t.seconds("db_update_frequency")
	if _, ok := t.lookup("db_update_frequency"); ok && d.UpdateFrequency <= 0 {
		t.fail("db_update_frequency", "db_update_frequency must be greater than 0")
	}
	d.UpdatePropagation = t.seconds("db_update_propagation")
	d.CacheTTL = t.seconds("db_cache_ttl")
	d.CacheNegTTL = t.seconds("db_cache_neg_ttl")
	d.ResurrectTTL = t.seconds("db_resurrect_ttl")
	d.CacheWarmupEntities = t.array("db_cache_warmup_entities")
	return d
}

// postgres reads the keys of one connection setting; with a parent (the
// pg_ro_* set) an unset key takes the parent's value.
func (t *typer) postgres(prefix string, parent *Postgres) Postgres {
	var p Postgres
	if parent != nil {
		p = *parent
	}
	has := func(key string) bool { _, ok := t.lookup(prefix + key); return ok }
	for key, dst := range map[string]*string{"host": &p.Host, "database": &p.Database, "schema": &p.Schema,
		"user": &p.User, "password": &p.Password} {
		if has(key) {
			*dst = t.str(prefix + key)
		}
	}
	for key, dst := range map[string]*bool{"ssl": &p.SSL, "ssl_verify": &p.SSLVerify} {
		if has(key) {
			*dst = t.boolean(prefix + key)
		}
	}
	if has("port") {
		p.Port = t.integer(prefix+"port", 0, prefix+"port must be a port number")
		if p.Port > 65535 {
			t.fail(prefix+"port", "%sport must be a port number", prefix)
		}
	}
	if has("timeout") {
		p.Timeout = t.millis(prefix + "timeout")
	}
	// Counts and milliseconds: whole numbers, at least 0.
	for key, dst := range map[string]*int{"max_concurrent_queries": &p.MaxConcurrentQueries, "pool_size": &p.PoolSize,
		"backlog": &p.Backlog} {
		if has(key) {
			*dst = t.integer(prefix+key, 0, prefix+key+" must be an integer greater than 0")
		}
	}
	for key, dst := range map[string]*time.Duration{"semaphore_timeout": &p.SemaphoreTimeout, "keepalive_timeout": &p.KeepaliveTimeout} {
		if has(key) {
			*dst = time.Duration(t.integer(prefix+key, 0, prefix+key+" must be an integer greater than 0")) * time.Millisecond
		}
	}
	return p
}

// millis reads a number of milliseconds at least zero.
func (t *typer) millis(key string) time.Duration { return t.nonNegative(key, time.Millisecond) }

// ConnString is the setting as a libpq key/value connection string, for
// the PostgreSQL driver.
func (p Postgres) ConnString() string {
	q := func(v string) string { return "'" + escapeConnValue(v) + "'" }
	s := "host=" + q(p.Host) + " port=" + strconv.Itoa(p.Port) + " dbname=" + q(p.Database) +
		" user=" + q(p.User) + " application_name=gong"
	if p.Password != "" {
		s += " password=" + q(p.Password)
	}
	switch {
	case p.SSL && p.SSLVerify:
		s += " sslmode=verify-full"
	case p.SSL:
		s += " sslmode=require"
	default:
		s += " sslmode=disable"
	}
	if p.Timeout > 0 {
		secs := int((p.Timeout + time.Second - 1) / time.Second)
		s += " connect_timeout=" + strconv.Itoa(secs)
	}
	return s
}

func escapeConnValue(v string) string {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, v[i])
	}
	return string(out)
}
