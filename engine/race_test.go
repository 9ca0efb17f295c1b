//go:build race

package engine

// raceEnabled: the race detector makes sync.Pool drop items at random
// (getScrape's pool among them), so allocation counts are meaningless under it.
const raceEnabled = true
