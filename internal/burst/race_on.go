//go:build race

package burst

// RaceEnabled reports whether the race detector is on.
const RaceEnabled = true
