package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/shoal-scraper/shoal/produce"
)

// kafkaConnFlags are the flags that say how to reach and authenticate to
// the brokers; `shoal run --sink=kafka` and `shoal tail` share them.
type kafkaConnFlags struct {
	brokers  string
	clientID string

	tlsEnable     bool
	tlsCAFile     string
	tlsCertFile   string
	tlsKeyFile    string
	tlsServerName string
	tlsInsecure   bool

	saslMechanism    string
	saslUsername     string
	saslPassword     string
	saslPasswordFile string
}

// RegisterFlags registers the connection flags on fs.
func (f *kafkaConnFlags) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.brokers, "kafka.brokers", "", "Kafka seed brokers, comma-separated host:port.")
	fs.StringVar(&f.clientID, "kafka.client-id", produce.DefaultKafkaClientID, "Kafka client.id (brokers log it and apply quotas by it).")
	fs.BoolVar(&f.tlsEnable, "kafka.tls.enable", false, "Connect to the brokers with TLS.")
	fs.StringVar(&f.tlsCAFile, "kafka.tls.ca-file", "", "PEM file of CAs to verify the brokers with (default: the system's).")
	fs.StringVar(&f.tlsCertFile, "kafka.tls.cert-file", "", "PEM client certificate for mutual TLS (with --kafka.tls.key-file).")
	fs.StringVar(&f.tlsKeyFile, "kafka.tls.key-file", "", "PEM private key of --kafka.tls.cert-file.")
	fs.StringVar(&f.tlsServerName, "kafka.tls.server-name", "", "Name to verify the brokers' certificates against (default: the host of each broker address).")
	fs.BoolVar(&f.tlsInsecure, "kafka.tls.insecure-skip-verify", false, "Do not verify the brokers' certificates (testing only).")
	fs.StringVar(&f.saslMechanism, "kafka.sasl.mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: no SASL).")
	fs.StringVar(&f.saslUsername, "kafka.sasl.username", "", "SASL username.")
	fs.StringVar(&f.saslPassword, "kafka.sasl.password", "", "SASL password (prefer --kafka.sasl.password-file: flags show in ps).")
	fs.StringVar(&f.saslPasswordFile, "kafka.sasl.password-file", "", "File holding the SASL password, re-read at every new connection so a rotated password is picked up; a trailing newline is ignored.")
}

// brokerList splits --kafka.brokers.
func (f *kafkaConnFlags) brokerList() []string {
	var out []string
	for b := range strings.SplitSeq(f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// tlsConfig returns the TLS configuration, nil without --kafka.tls.enable.
// The files are read once, here.
func (f *kafkaConnFlags) tlsConfig() (*tls.Config, error) {
	if !f.tlsEnable {
		for name, v := range map[string]bool{
			"--kafka.tls.ca-file": f.tlsCAFile != "", "--kafka.tls.cert-file": f.tlsCertFile != "",
			"--kafka.tls.key-file": f.tlsKeyFile != "", "--kafka.tls.server-name": f.tlsServerName != "",
			"--kafka.tls.insecure-skip-verify": f.tlsInsecure,
		} {
			if v {
				return nil, fmt.Errorf("%s needs --kafka.tls.enable", name)
			}
		}
		return nil, nil
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.tlsServerName,
		InsecureSkipVerify: f.tlsInsecure, //nolint:gosec // the user asked for it, for testing
	}
	if f.tlsCAFile != "" {
		pem, err := os.ReadFile(f.tlsCAFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka.tls.ca-file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--kafka.tls.ca-file=%q: no PEM certificate in it", f.tlsCAFile)
		}
	}
	switch {
	case f.tlsCertFile != "" && f.tlsKeyFile != "":
		cert, err := tls.LoadX509KeyPair(f.tlsCertFile, f.tlsKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka.tls.cert-file/--kafka.tls.key-file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case f.tlsCertFile != "" || f.tlsKeyFile != "":
		return nil, errors.New("--kafka.tls.cert-file and --kafka.tls.key-file go together")
	}
	return c, nil
}

// saslMech returns the SASL mechanism, nil without --kafka.sasl.mechanism.
func (f *kafkaConnFlags) saslMech() (sasl.Mechanism, error) {
	if f.saslMechanism == "" {
		if f.saslUsername != "" || f.saslPassword != "" || f.saslPasswordFile != "" {
			return nil, errors.New("--kafka.sasl.username/password need --kafka.sasl.mechanism")
		}
		return nil, nil
	}
	if f.saslUsername == "" {
		return nil, errors.New("--kafka.sasl.mechanism needs --kafka.sasl.username")
	}
	if (f.saslPassword == "") == (f.saslPasswordFile == "") {
		return nil, errors.New("--kafka.sasl.mechanism needs exactly one of --kafka.sasl.password and --kafka.sasl.password-file")
	}
	user, file := f.saslUsername, f.saslPasswordFile
	password := func() (string, error) {
		if file == "" {
			return f.saslPassword, nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--kafka.sasl.password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if _, err := password(); err != nil { // fail at start, not at the first connection
		return nil, err
	}
	switch strings.ToUpper(f.saslMechanism) {
	case "PLAIN":
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			p, err := password()
			return plain.Auth{User: user, Pass: p}, err
		}), nil
	case "SCRAM-SHA-256":
		return scram.Sha256(func(context.Context) (scram.Auth, error) {
			p, err := password()
			return scram.Auth{User: user, Pass: p}, err
		}), nil
	case "SCRAM-SHA-512":
		return scram.Sha512(func(context.Context) (scram.Auth, error) {
			p, err := password()
			return scram.Auth{User: user, Pass: p}, err
		}), nil
	}
	return nil, fmt.Errorf("--kafka.sasl.mechanism=%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", f.saslMechanism)
}

// clientOpts are the kgo options for a client of its own (shoal tail):
// brokers, client id, TLS, SASL.
func (f *kafkaConnFlags) clientOpts() ([]kgo.Opt, error) {
	brokers := f.brokerList()
	if len(brokers) == 0 {
		return nil, errors.New("--kafka.brokers is required")
	}
	tc, err := f.tlsConfig()
	if err != nil {
		return nil, err
	}
	mech, err := f.saslMech()
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(f.clientID)}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// kafkaSinkFlags configure the Kafka sink of `shoal run`.
type kafkaSinkFlags struct {
	conn                   kafkaConnFlags
	topic                  string
	topicTemplate          string
	format                 string
	compression            string
	bufferBytes            bytesFlag
	maxRecordBytes         int
	flushTimeout           time.Duration
	linger                 time.Duration
	allowAutoTopicCreation bool
}

// RegisterFlags registers the sink's flags (and the connection flags) on fs.
func (f *kafkaSinkFlags) RegisterFlags(fs *flag.FlagSet) {
	f.conn.RegisterFlags(fs)
	fs.StringVar(&f.topic, "kafka.topic", produce.DefaultKafkaTopic, "Topic of every record (unless --kafka.topic-template is set).")
	fs.StringVar(&f.topicTemplate, "kafka.topic-template", "", "Topic per job, e.g. 'metrics-{{job}}': {{job}} is the only placeholder; characters not allowed in topic names become '_'. Overrides --kafka.topic.")
	fs.StringVar(&f.format, "kafka.format", produce.DefaultKafkaFormat.String(), "Record value: rw1 (prometheus.WriteRequest) or rw2 (io.prometheus.write.v2.Request).")
	fs.StringVar(&f.compression, "kafka.compression", produce.Zstd.String(), "Record batch compression: zstd, zstd-fastest (less CPU here, larger batches at the brokers) or none.")
	f.bufferBytes = produce.DefaultKafkaBufferBytes
	fs.Var(&f.bufferBytes, "kafka.buffer-bytes", "Memory for records not yet acknowledged (bytes, or with a unit: 256MiB); when full the oldest queued scrapes are dropped and counted.")
	fs.IntVar(&f.maxRecordBytes, "kafka.max-record-bytes", produce.DefaultKafkaMaxRecordBytes, "Largest record (value + key + headers); larger scrapes are split into several records. Keep it under the topic's max.message.bytes.")
	fs.DurationVar(&f.flushTimeout, "kafka.flush-timeout", produce.DefaultKafkaFlushTimeout, "At shutdown, how long to wait for buffered records to be delivered.")
	fs.DurationVar(&f.linger, "kafka.linger", produce.DefaultKafkaLinger, "How long records gather before they are sent together: batches of many targets' scrapes compress better (see README, Batching). 0 sends at once.")
	fs.BoolVar(&f.allowAutoTopicCreation, "kafka.allow-auto-topic-creation", false, "Ask the brokers to create missing topics (they must allow it too).")
}

// config maps the flags onto the sink's config; memberID goes into every
// record's member header.
func (f *kafkaSinkFlags) config(memberID string) (produce.KafkaConfig, error) {
	cfg := produce.DefaultKafkaConfig()
	cfg.Brokers = f.conn.brokerList()
	if len(cfg.Brokers) == 0 {
		return cfg, errors.New("--sink=kafka needs --kafka.brokers")
	}
	cfg.ClientID = f.conn.clientID
	cfg.Topic = f.topic
	cfg.TopicTemplate = f.topicTemplate
	format, err := produce.ParseRecordFormat(f.format)
	if err != nil {
		return cfg, fmt.Errorf("--kafka.format: %w", err)
	}
	cfg.Format = format
	if cfg.Compression, err = produce.ParseCompression(f.compression); err != nil {
		return cfg, fmt.Errorf("--kafka.compression: %w", err)
	}
	cfg.BufferBytes = int64(f.bufferBytes)
	cfg.MaxRecordBytes = f.maxRecordBytes
	cfg.FlushTimeout = f.flushTimeout
	cfg.Linger = f.linger
	cfg.AllowAutoTopicCreation = f.allowAutoTopicCreation
	cfg.MemberID = memberID
	if cfg.TLS, err = f.conn.tlsConfig(); err != nil {
		return cfg, err
	}
	if cfg.SASL, err = f.conn.saslMech(); err != nil {
		return cfg, err
	}
	if f.flushTimeout <= 0 {
		return cfg, fmt.Errorf("--kafka.flush-timeout=%s: want a positive duration", f.flushTimeout)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// bytesFlag is a byte count given as a number or with a base-2 unit
// (256MiB, 1GiB, 512KB = 512KiB).
type bytesFlag int64

func (b *bytesFlag) String() string {
	if b == nil {
		return "0"
	}
	return units.Base2Bytes(*b).String()
}

func (b *bytesFlag) Set(s string) error {
	v, err := units.ParseBase2Bytes(s)
	if err != nil {
		var n int64
		if _, serr := fmt.Sscan(s, &n); serr != nil || fmt.Sprint(n) != s {
			return fmt.Errorf("want bytes, like 268435456 or 256MiB")
		}
		v = units.Base2Bytes(n)
	}
	if v <= 0 {
		return fmt.Errorf("want a positive size")
	}
	*b = bytesFlag(v)
	return nil
}
