// Package postgres is gong's database mode: Kong 3.10's core schema on
// PostgreSQL, shared with Kong's own nodes.
//
// It creates and inspects the schema (Bootstrap, Up, Finish, Reset,
// State: Kong's "migrations" verbs), reads the entities gong serves into
// the declarative document a kong.yml would give (Document, Load), so
// that the one schema engine of runtime/declarative validates them,
// keeps a node's copy of the entities and their validated configuration
// up to date change by change (Config, mirror.go), writes entities in one
// transaction each together with the cluster_events rows that tell every
// other node and a NOTIFY (Modify, Import), and polls cluster_events as
// Kong's nodes do, at once on another gong node's NOTIFY (Watch).
//
// gong reads the default workspace's services, routes, upstreams,
// targets, certificates, snis, ca_certificates, plugins, consumers and
// vaults (Kong's sm_vaults table). Rows of other workspaces, other tables
// (credentials, keys, clustering), plugins gong has not enabled and
// vaults it does not have are never read into a generation, rewritten or
// deleted.
//
// The schema is written for gong from the state Kong's core migrations
// 000_base to 025_390_to_3100 leave (schema.sql); Bootstrap records those
// migration names in schema_meta, so Kong sees an up-to-date core.
package postgres
