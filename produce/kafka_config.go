package produce

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
)

// KafkaConfig configures the Kafka sink. Start from DefaultKafkaConfig; zero
// fields passed to NewKafka take its defaults too, except Linger. Only cmd/ maps flags onto
// it.
type KafkaConfig struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// ClientID is the Kafka client.id, which brokers log and use for
	// quotas. Default "shoal".
	ClientID string
	// Topic receives every record unless TopicTemplate is set. Default
	// "shoal-metrics". Must be a valid Kafka topic name.
	Topic string
	// TopicTemplate, if set, names the topic per job: every "{{job}}" is
	// replaced by the scrape's job name, and characters Kafka does not
	// allow in a topic name (anything but ASCII letters, digits, '.', '_'
	// and '-') are replaced by '_'; a name longer than 249 bytes is cut.
	// "{{job}}" is the only placeholder. The topics must exist unless
	// AllowAutoTopicCreation is set (and the brokers allow it).
	TopicTemplate string
	// Format is the record value's message. Default RW2: 2.5× smaller than
	// RW1 before compression and smaller after zstd, at a lower encode +
	// compress cost (README, "Which format").
	Format RecordFormat
	// Compression is how record batches are compressed. Default Zstd;
	// ZstdFastest trades bytes at the brokers for CPU here (see its doc).
	Compression Compression
	// BufferBytes bounds the memory held by records not yet acknowledged:
	// those queued in the sink plus those handed to the Kafka client. When
	// it is full the oldest queued records are dropped. Default 256 MiB,
	// a small share of a scraper's RAM: a node_exporter scrape in rw2 is
	// charged about 28 KB (a 25 KB record, its buffer's slack and
	// bookkeeping), so this rides out a broker outage of about 2 minutes at
	// 1,000 targets × 15 s, or 10 s at 10,000 targets × 10 s (raise it
	// there). At least 4 × MaxRecordBytes.
	BufferBytes int64
	// MaxRecordBytes bounds one record as the broker counts it (value, key
	// and headers); bigger scrapes are split into several records. Default
	// 1,000,000: with batch framing it stays under the broker's default
	// message.max.bytes (1,048,588), so a record always fits a batch.
	MaxRecordBytes int
	// FlushTimeout bounds Close: how long it waits for the queue and the
	// client to deliver. Default 10 s: a broker that has not answered by
	// then is unlikely to before the process is killed.
	FlushTimeout time.Duration
	// Linger is how long the sink gathers a partition's records at most
	// before it hands them to the Kafka client together, so that the
	// partition's batch holds many targets' scrapes: zstd then finds what
	// similar targets share. A partition whose records fill a batch
	// (about 1 MB) before then hands them over at once, a full batch at
	// a time, so the sink holds at most about a batch per partition.
	// Default 5 s, the longest a record waits (Prometheus's remote write
	// waits as long, batch_send_deadline): at 300 node_exporter targets ×
	// 15 s on 6 partitions a batch then holds about 16 scrapes and rw2
	// costs 4.5 B/sample at the broker, against 13 with a 10 ms linger
	// (bench/kafka_bytes_test.go). The records wait in the sink's queue,
	// within BufferBytes, where dropping the oldest still works: the
	// oldest partition's records also move as soon as the queue holds an
	// eighth of BufferBytes, so a small buffer (or very many partitions)
	// makes smaller batches, never drops or a throughput cap. Close hands
	// everything over at once. Unlike the other fields, 0 is not replaced
	// by the default: it hands every record over at once (kgo's own 10 ms
	// linger still batches what arrives together).
	Linger time.Duration
	// MemberID is the value of every record's member header: which shoal
	// process wrote it. cmd/shoal defaults it to hostname:web-port.
	MemberID string
	// AllowAutoTopicCreation asks brokers to create missing topics (they
	// must also allow it: auto.create.topics.enable). Default false: a
	// typo in a topic or template then fails loudly (errors_total
	// {kind="unknown_topic"}) instead of creating topics.
	AllowAutoTopicCreation bool
	// TLS, if not nil, is used for every broker connection.
	TLS *tls.Config
	// SASL, if not nil, authenticates every broker connection.
	SASL sasl.Mechanism
	// DropLogInterval is how often drops are logged, with counts since the
	// last log line. Default 10 s: a broken broker must not flood the log.
	DropLogInterval time.Duration
	// ClientOpts are appended to the sink's own kgo options (and so
	// override them): for tests and tuning, not for flags.
	ClientOpts []kgo.Opt
}

// Defaults of KafkaConfig.
const (
	DefaultKafkaTopic          = "shoal-metrics"
	DefaultKafkaClientID       = "shoal"
	DefaultKafkaBufferBytes    = 256 << 20
	DefaultKafkaMaxRecordBytes = 1_000_000
	DefaultKafkaFlushTimeout   = 10 * time.Second
	DefaultKafkaLinger         = 5 * time.Second
	DefaultKafkaFormat         = RW2
)

// DefaultKafkaConfig returns the defaults; Brokers is left empty.
func DefaultKafkaConfig() KafkaConfig {
	return KafkaConfig{
		ClientID:        DefaultKafkaClientID,
		Topic:           DefaultKafkaTopic,
		Format:          DefaultKafkaFormat,
		Compression:     Zstd,
		BufferBytes:     DefaultKafkaBufferBytes,
		MaxRecordBytes:  DefaultKafkaMaxRecordBytes,
		FlushTimeout:    DefaultKafkaFlushTimeout,
		Linger:          DefaultKafkaLinger,
		DropLogInterval: 10 * time.Second,
	}
}

func (c *KafkaConfig) setDefaults() {
	d := DefaultKafkaConfig()
	if c.ClientID == "" {
		c.ClientID = d.ClientID
	}
	if c.Topic == "" {
		c.Topic = d.Topic
	}
	if c.Format == 0 {
		c.Format = d.Format
	}
	if c.Compression == 0 {
		c.Compression = d.Compression
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = d.BufferBytes
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = d.MaxRecordBytes
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = d.FlushTimeout
	}
	if c.DropLogInterval == 0 {
		c.DropLogInterval = d.DropLogInterval
	}
}

// Limits checked by Validate.
const (
	minMaxRecordBytes = 1 << 10 // room for a key, headers and a few samples
	maxMaxRecordBytes = 1 << 30 // kgo's ceiling for a record batch
	maxTopicLen       = 249     // Kafka's limit on a topic name
)

// Validate reports every problem with c, joined. It does not apply
// defaults: NewKafka does that first.
func (c *KafkaConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: no brokers"))
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err == nil && host == "" {
			err = errors.New("missing host")
		}
		if err == nil {
			if p, perr := strconv.Atoi(port); perr != nil || p <= 0 || p > 65535 {
				err = errors.New("bad port")
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("kafka: broker %q: want host:port: %v", b, err))
		}
	}
	if c.TopicTemplate == "" {
		if err := ValidateTopic(c.Topic); err != nil {
			errs = append(errs, err)
		}
	} else if _, err := parseTopicTemplate(c.TopicTemplate); err != nil {
		errs = append(errs, err)
	}
	if c.Format != RW1 && c.Format != RW2 {
		errs = append(errs, fmt.Errorf("kafka: invalid record format %s", c.Format))
	}
	if c.Compression > NoCompression {
		errs = append(errs, fmt.Errorf("kafka: invalid compression %s", c.Compression))
	}
	if c.MaxRecordBytes < minMaxRecordBytes || c.MaxRecordBytes > maxMaxRecordBytes {
		errs = append(errs, fmt.Errorf("kafka: max record bytes %d: want %d to %d", c.MaxRecordBytes, minMaxRecordBytes, maxMaxRecordBytes))
	}
	if c.BufferBytes < 4*int64(c.MaxRecordBytes) {
		errs = append(errs, fmt.Errorf("kafka: buffer bytes %d: want at least 4 × max record bytes (%d)", c.BufferBytes, 4*int64(c.MaxRecordBytes)))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("kafka: negative linger %s", c.Linger))
	}
	if c.FlushTimeout < 0 {
		errs = append(errs, fmt.Errorf("kafka: negative flush timeout %s", c.FlushTimeout))
	}
	if c.DropLogInterval < 0 {
		errs = append(errs, fmt.Errorf("kafka: negative drop log interval %s", c.DropLogInterval))
	}
	return errors.Join(errs...)
}
