package produce

import (
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shoal-scraper/shoal/internal/javakafka"
)

// The sink's partitioner, kgo.StickyKeyPartitioner(nil) as wrapped by
// partitioner, puts keyed records where the Java client does; the sink
// groups queued records by the same choice; and the wrapper tells the sink
// the partition count kgo partitions over.
func TestKafkaPartitionerIsJavas(t *testing.T) {
	keys := []string{"", "21", "foobar", "abc", "node/10.0.0.1:9100", "kube-state-metrics/ksm-0:8080", "a-little-bit-longer-string"}
	for i := range 200 {
		keys = append(keys, "job"+strconv.Itoa(i%7)+"/host-"+strconv.Itoa(i)+".example:9100")
	}
	k := queueSink(1<<20, 0)
	p := partitioner{k.Kafka}.ForTopic("t")
	for _, key := range keys {
		for _, n := range []int32{1, 2, 3, 6, 12, 50, 128} {
			r := &kgo.Record{Topic: "t", Key: []byte(key)}
			got, want := int32(p.Partition(r, int(n))), javakafka.Partition([]byte(key), n)
			if got != want {
				t.Errorf("key %q over %d partitions: kgo %d, Java %d", key, n, got, want)
			}
			if seen := k.byTopic["t"].seen.Load(); seen != n {
				t.Errorf("the sink saw %d partitions, kgo partitioned over %d", seen, n)
			}
			k.mu.Lock()
			k.regroup()
			e := &entry{rec: *r, tq: k.byTopic["t"]}
			grouped := k.partQueueOf(e).part
			k.mu.Unlock()
			if int32(grouped) != want {
				t.Errorf("key %q over %d partitions: grouped with partition %d, kgo chose %d", key, n, grouped, want)
			}
		}
	}
}
