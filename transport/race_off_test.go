//go:build !race

package transport_test

// raceEnabled reports that the race detector is on: the properties then
// run fewer schedules.
const raceEnabled = false
