// Package vault resolves Kong's secret references,
// {vault://<vault>/<resource>[/<key>][?<config>][#<version>]}, for every
// part of gong that accepts one: kong.conf values, certificate cert and
// key, referenceable plugin config fields and kong.vault in Lua.
//
// Two vaults exist: env (Kong's: environment variables) and file (gong's:
// files under one directory kong.conf names). A reference names a vault
// by its name or by the prefix of a vaults entity from kong.yml, which
// carries its own config. Resolved values are cached per reference for
// the vault's ttl; neg_ttl caches failures, and resurrect_ttl keeps
// serving a value whose refresh failed. No error text ever contains a
// secret.
package vault
