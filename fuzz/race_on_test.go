//go:build race

package fuzz

// raceEnabled reports that the race detector is on: the flood test then
// opens fewer connections (it is ~10x slower per connection).
const raceEnabled = true
