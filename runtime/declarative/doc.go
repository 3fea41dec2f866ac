// Package declarative loads a Kong declarative configuration (kong.yml,
// kong.json, and kong.toml as a gong extension with the same schema) into
// a validated, read-only snapshot of the entities the stream subsystem
// uses: services, routes, upstreams, targets, certificates, snis,
// ca_certificates, plugins and consumers.
//
// It applies Kong's schemas (kong/db/schema/entities/*.lua), defined in
// Go with runtime/schema (the engine plugin schemas use too), defaults,
// shorthands, nesting, references, uniqueness rules and deterministic ids
// (kong/db/schema/others/declarative_config.lua), and reports every
// problem of a stage at once with Kong's messages: first schema errors,
// then, when there are none, uniqueness and reference errors, as Kong
// does.
//
// Differences from Kong:
//   - Entities for which Kong picks a random id (unnamed routes,
//     certificates, CA certificates, consumers without username) get a
//     UUIDv5 derived from the entity type, the parent's id and the
//     position, so ids are stable across reloads of the same file.
//   - Errors of entities nested more than one level deep are reported at
//     their full path (services[1].routes[2].plugins[1]); Kong keeps only
//     the innermost parent.
//   - Route expressions are compiled only through
//     Options.RouteExpression, regex paths are not compiled, and plain
//     paths are not checked for normalisation.
//   - Plugin configs are validated only through Options.PluginConfig.
//   - Entity types other than the nine above (vaults, keys, workspaces,
//     plugin-defined entities) are rejected as unknown fields.
//
// Extensions: routes whose protocols include "tls" take three gong fields
// for TLS termination. client_ca_certificates is a set of ca_certificates
// ids (each must be declared in the file); when non-empty, a client
// certificate verified against those CAs is required. client_verify_depth
// (0-64, null means nginx's ssl_verify_depth of 1) limits the
// intermediates, and alpn_protocols lists the ALPN protocol ids offered.
// Other routes must leave them null.
//
// Upstreams take gong fields too: healthchecks.active.type may be "udp"
// (then healthchecks.active.send is required), healthchecks.active.send
// and .expect give a check's payload and the start of the reply it
// expects, and udp_affinity_ttl (seconds, 0 off) sends a UDP client back
// to its previous target.
//
// Usage:
//
//	cfg, err := declarative.LoadFile("kong.yml", declarative.Options{})
//	if err != nil {
//		fmt.Println("Error: Failed parsing:\n" + err.Error())
//	}
package declarative
