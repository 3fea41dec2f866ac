// Package spec holds gong's black-box tests: real listeners on loopback,
// real clients and real upstreams started by the tests. Nothing imports it.
package spec
