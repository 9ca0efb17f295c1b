package produce

import (
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shoal-scraper/shoal/internal/javakafka"
)

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
			if got, want := int32(p.Partition(r, int(n))), javakafka.Partition([]byte(key), n); got != want {
				t.Errorf("key %q over %d partitions: kgo %d, Java %d", key, n, got, want)
			}
		}
	}
}
