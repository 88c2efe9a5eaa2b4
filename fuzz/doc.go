// Package fuzz holds the native go test -fuzz targets for every parser and
// state machine of this module that sees peer input (greeting lines, auth
// lines, the handshake machine, the msgpack and json framing decoders, the
// node-port dispatcher and the data-connection rendezvous machine), and the
// catalogue of hostile inputs replayed against real nodes on loopback TCP.
//
// The package has no exported API: everything lives in _test.go files.
// Seed corpora are in testdata/fuzz/FuzzXxx (Go corpus format); every
// crasher a fuzzing run finds is kept there as a regression input, so a
// plain go test ./fuzz replays all of them. .ci/fuzz runs each target for
// a bounded time.
package fuzz
