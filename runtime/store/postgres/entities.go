package postgres

import (
	"slices"

	"github.com/jackc/pgx/v5"
)

// table describes how one entity type is stored.
type table struct {
	name string // the entity type in kong.yml, and the table unless sqlName is set
	// sqlName is the table when Kong names it otherwise (sm_vaults).
	sqlName string
	// foreign maps a foreign key field to its column (service ->
	// service_id).
	foreign map[string]string
	// workspaced tables have a ws_id column; gong reads and writes the
	// default workspace's rows only.
	workspaced bool
	// millis tables keep timestamps with millisecond precision.
	millis bool
	// cacheKey lists the fields of Kong's cache_key column, when the
	// table has one.
	cacheKey []string
	// extensions are gong's fields Kong's schema has no column for:
	// database mode refuses them set.
	extensions []string
}

// tables are the entity types gong serves, parents before children, in
// the order a declarative configuration lists them.
var tables = []table{
	{name: "vaults", sqlName: "sm_vaults", workspaced: true},
	{name: "certificates", workspaced: true},
	{name: "ca_certificates"},
	{name: "services", foreign: map[string]string{"client_certificate": "client_certificate_id"}, workspaced: true,
		extensions: []string{"proxy_protocol"}},
	{name: "routes", foreign: map[string]string{"service": "service_id"}, workspaced: true,
		extensions: []string{"client_ca_certificates", "client_verify_depth", "alpn_protocols"}},
	{name: "snis", foreign: map[string]string{"certificate": "certificate_id"}, workspaced: true},
	{name: "upstreams", foreign: map[string]string{"client_certificate": "client_certificate_id"}, workspaced: true,
		extensions: []string{"udp_affinity_ttl"}},
	{name: "targets", foreign: map[string]string{"upstream": "upstream_id"}, workspaced: true, millis: true,
		cacheKey: []string{"upstream", "target"}},
	{name: "consumers", workspaced: true},
	{name: "plugins", foreign: map[string]string{"route": "route_id", "service": "service_id", "consumer": "consumer_id"},
		workspaced: true, cacheKey: []string{"name", "route", "service", "consumer"}},
}

// sql is the table's name in SQL, quoted.
func (t table) sql() string {
	if t.sqlName != "" {
		return pgx.Identifier{t.sqlName}.Sanitize()
	}
	return pgx.Identifier{t.name}.Sanitize()
}

// tableNamed returns the table of an entity type.
func tableNamed(name string) (table, bool) {
	i := slices.IndexFunc(tables, func(t table) bool { return t.name == name })
	if i < 0 {
		return table{}, false
	}
	return tables[i], true
}
