//go:build !race

package fuzz

// raceEnabled reports that the race detector is on.
const raceEnabled = false
