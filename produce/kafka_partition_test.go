package produce

import (
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// javaMurmur2 is an independent port of Kafka's
// org.apache.kafka.common.utils.Utils.murmur2, keeping Java's int32
// arithmetic and its >>> (unsigned shift) spelled out.
func javaMurmur2(data []byte) int32 {
	const (
		seed = int32(-1756908916) // 0x9747b28c
		m    = int32(0x5bd1e995)
		r    = 24
	)
	ushr := func(x int32, n uint) int32 { return int32(uint32(x) >> n) }
	length := int32(len(data))
	h := seed ^ length
	length4 := length / 4
	for i := int32(0); i < length4; i++ {
		i4 := i * 4
		k := int32(data[i4+0]) + int32(data[i4+1])<<8 + int32(data[i4+2])<<16 + int32(data[i4+3])<<24
		k *= m
		k ^= ushr(k, r)
		k *= m
		h *= m
		h ^= k
	}
	switch length % 4 {
	case 3:
		h ^= int32(data[(length & ^3)+2]) << 16
		fallthrough
	case 2:
		h ^= int32(data[(length & ^3)+1]) << 8
		fallthrough
	case 1:
		h ^= int32(data[length & ^3])
		h *= m
	}
	h ^= ushr(h, 13)
	h *= m
	h ^= ushr(h, 15)
	return h
}

// javaPartition is the Java producer's partition for a keyed record:
// Utils.toPositive(Utils.murmur2(key)) % numPartitions.
func javaPartition(key []byte, n int32) int32 {
	return (javaMurmur2(key) & 0x7fffffff) % n
}

// Kafka's own vectors (UtilsTest.testMurmur2) pin the port.
func TestJavaMurmur2Vectors(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := javaMurmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
	// toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
	if got := javaPartition([]byte("foobar"), 50); got != 16 {
		t.Errorf("partition of foobar over 50: %d, want 16", got)
	}
}

// The sink's partitioner, kgo.StickyKeyPartitioner(nil), puts keyed
// records where the Java client does.
func TestKafkaPartitionerIsJavas(t *testing.T) {
	keys := []string{"", "21", "foobar", "abc", "node/10.0.0.1:9100", "kube-state-metrics/ksm-0:8080", "a-little-bit-longer-string"}
	for i := range 200 {
		keys = append(keys, "job"+strconv.Itoa(i%7)+"/host-"+strconv.Itoa(i)+".example:9100")
	}
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, key := range keys {
		for _, n := range []int32{1, 2, 3, 6, 12, 50, 128} {
			r := &kgo.Record{Key: []byte(key)}
			if got, want := int32(p.Partition(r, int(n))), javaPartition([]byte(key), n); got != want {
				t.Errorf("key %q over %d partitions: kgo %d, Java %d", key, n, got, want)
			}
		}
	}
}
