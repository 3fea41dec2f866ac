// Package testsvc starts the real services tests need (Redis,
// PostgreSQL) from the machine's packages, on free loopback ports in
// temporary directories, and stops them when the test ends; and a
// loopback address whose connects hang. Only tests import it.
package testsvc
