package limits

import (
	"errors"
	"fmt"
	"time"
)

// Config is the store a plugin configuration names.
type Config struct {
	// Policy is "local", "cluster" or "redis".
	Policy string
	Redis  RedisConfig
	// SyncRate, for redis, batches this node's counts and sends them
	// every SyncRate; zero sends each count as it happens.
	SyncRate time.Duration
}

// RedisConfig is Kong's shared redis record.
type RedisConfig struct {
	Host               string
	Port               int
	Username, Password string
	Database           int
	SSL, SSLVerify     bool
	ServerName         string
	Timeout            time.Duration
}

// errCluster is the answer to the cluster policy on a node without a
// database, as Kong refuses it in DB-less mode.
var errCluster = errors.New("policy 'cluster' keeps its counters in the PostgreSQL database of database mode, which this node does not run (database = off); use 'local' or 'redis'")

// ParseConfig reads the policy, redis and sync_rate fields of a plugin
// configuration as the limit plugins' schemas produce them.
func ParseConfig(conf map[string]any) (Config, error) {
	c := Config{Policy: "local"}
	if p, ok := conf["policy"].(string); ok && p != "" {
		c.Policy = p
	}
	if r, ok := conf["sync_rate"].(float64); ok && r > 0 {
		c.SyncRate = time.Duration(r * float64(time.Second))
	}
	switch c.Policy {
	case "local":
		c.SyncRate = 0
		return c, nil
	case "cluster":
		c.SyncRate = 0
		return c, nil
	case "redis":
	default:
		return c, fmt.Errorf("unknown policy %q: expected local, cluster or redis", c.Policy)
	}
	r, _ := conf["redis"].(map[string]any)
	str := func(k string) string { s, _ := r[k].(string); return s }
	num := func(k string, def float64) float64 {
		if n, ok := r[k].(float64); ok {
			return n
		}
		return def
	}
	flag := func(k string) bool { b, _ := r[k].(bool); return b }
	c.Redis = RedisConfig{
		Host: str("host"), Port: int(num("port", 6379)), Username: str("username"), Password: str("password"),
		Database: int(num("database", 0)), SSL: flag("ssl"), SSLVerify: flag("ssl_verify"), ServerName: str("server_name"),
		Timeout: time.Duration(num("timeout", 2000)) * time.Millisecond,
	}
	if c.Redis.Host == "" {
		return c, errors.New("policy 'redis' needs redis.host")
	}
	return c, nil
}
