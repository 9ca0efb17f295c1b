package javakafka

import "testing"

// Kafka's own vectors (UtilsTest.testMurmur2) pin the port.
func TestMurmur2Vectors(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := Murmur2([]byte(in)); got != want {
			t.Errorf("Murmur2(%q) = %d, want %d", in, got, want)
		}
	}
	if got := Partition([]byte("foobar"), 50); got != 16 {
		t.Errorf("Partition(foobar, 50) = %d, want 16", got)
	}
}
