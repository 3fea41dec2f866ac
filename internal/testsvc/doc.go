// Package testsvc starts the real services tests need (Redis,
// PostgreSQL) from the machine's packages, on free loopback ports in
// temporary directories, and stops them when the test ends; and loopback
// addresses that refuse connections or leave them hanging. Only tests
// import it.
package testsvc
