//go:build race

package spec

// raceEnabled: the race detector's shadow memory grows RSS several times
// over what the program allocates, so RSS bounds do not apply.
const raceEnabled = true
