package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shoal-scraper/shoal/bench/farm"
	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/engine"
	"github.com/shoal-scraper/shoal/produce"
)

// TestKafkaBytesPerSample measures issue 3's wire target, bytes per sample
// at the broker, for the node_exporter payload: one engine scrapes a farm
// and writes every scrape to several Kafka sinks at once (a tee), one per
// format × producer setting, each into its own fresh topic, so every
// setting compresses exactly the same scrapes. After the sinks are closed
// (flushed) it sums the topic's *.log segment files in the broker's log
// directory and divides by the samples the sink saw acknowledged
// (shoal_kafka_samples_total).
//
// Opt-in, never part of `make test` (it takes about a minute per value mode
// and wants a real broker). With the defaults it measures README's table
// (Record format, Batching) for 300 targets:
//
//	scripts/testenv.sh up kafka && set -a && . .testenv/env && set +a
//	SHOAL_BENCH_KAFKA=1 go test ./bench -run TestKafkaBytesPerSample -v -timeout 10m
//	scripts/testenv.sh down
//
// Knobs (env): SHOAL_BENCH_KAFKA_TARGETS (default 300),
// SHOAL_BENCH_KAFKA_INTERVAL_MS (default 15000), SHOAL_BENCH_KAFKA_SCRAPES
// (per target, default 4), SHOAL_BENCH_KAFKA_PARTITIONS (default 6),
// SHOAL_BENCH_KAFKA_MODES (default "shared,distinct"),
// SHOAL_BENCH_KAFKA_LINGERS (the sink's KafkaConfig.Linger, default
// "10ms,1s,2s,5s"), SHOAL_BENCH_KAFKA_COMPRESSORS (default "shoal,kgo";
// see compressorOpts). Scrapes per second per partition decide how many
// records a linger puts in one batch; keep the linger below the interval,
// or consecutive scrapes of one target share a batch too, which flatters.
//
// Two value modes, as subtests: "shared" is one farm for every target,
// serving the farm's variants of the payload (each finite value v as v+k),
// each target from its own variant, so targets scraped together differ by
// small offsets (before 2026-12-03 every target served the same variant
// at once, which flattered: records of different targets in one batch
// were then nearly identical); "distinct" gives every target its own
// values (each non-0/1 value scaled by a per-target factor), as real
// hosts have.
func TestKafkaBytesPerSample(t *testing.T) {
	if os.Getenv("SHOAL_BENCH_KAFKA") != "1" {
		t.Skip("opt-in: scripts/testenv.sh up kafka; set -a; . .testenv/env; set +a; SHOAL_BENCH_KAFKA=1 go test ./bench -run TestKafkaBytesPerSample -v -timeout 10m")
	}
	broker, logDir := os.Getenv("SHOAL_TEST_KAFKA"), os.Getenv("SHOAL_TEST_KAFKA_LOGDIR")
	if broker == "" || logDir == "" {
		t.Fatal("SHOAL_TEST_KAFKA and SHOAL_TEST_KAFKA_LOGDIR must be set (scripts/testenv.sh up kafka; set -a; . .testenv/env; set +a)")
	}
	modes := strings.Split(envOr("SHOAL_BENCH_KAFKA_MODES", "shared,distinct"), ",")
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { kafkaBytes(t, broker, logDir, mode) })
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func envInt(t *testing.T, k string, d int) int {
	v := os.Getenv(k)
	if v == "" {
		return d
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", k, v, err)
	}
	return n
}

// wireSetting is one producer setting under test.
type wireSetting struct {
	format produce.RecordFormat
	linger time.Duration
	comp   string // see compressorOpts
}

func (s wireSetting) name() string {
	return fmt.Sprintf("%s/linger=%s/%s", s.format, s.linger, s.comp)
}

func wireSettings() []wireSetting {
	var out []wireSetting
	lingers := []time.Duration{10 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}
	if v := os.Getenv("SHOAL_BENCH_KAFKA_LINGERS"); v != "" {
		lingers = nil
		for _, f := range strings.Split(v, ",") {
			d, err := time.ParseDuration(f)
			if err != nil {
				panic(err)
			}
			lingers = append(lingers, d)
		}
	}
	comps := strings.Split(envOr("SHOAL_BENCH_KAFKA_COMPRESSORS", "shoal,kgo"), ",")
	for _, f := range []produce.RecordFormat{produce.RW2, produce.RW1} {
		for _, l := range lingers {
			for _, c := range comps {
				out = append(out, wireSetting{f, l, c})
			}
		}
	}
	return out
}

// compressorOpts returns the kgo options of a compressor setting:
// "shoal" is the sink's own (zstd, 1 MiB window: produce/kafka_zstd.go),
// "kgo" kgo.ZstdCompression() (64 KiB window), "kgo-fastest" and
// "kgo-better" the same at another level.
func compressorOpts(name string) ([]kgo.Opt, error) {
	var codec kgo.CompressionCodec
	switch name {
	case "shoal":
		return nil, nil
	case "kgo":
		codec = kgo.ZstdCompression()
	case "kgo-fastest":
		codec = kgo.ZstdCompression().WithLevel(int(zstd.SpeedFastest))
	case "kgo-better":
		codec = kgo.ZstdCompression().WithLevel(int(zstd.SpeedBetterCompression))
	default:
		return nil, fmt.Errorf("unknown compressor %q", name)
	}
	c, err := kgo.DefaultCompressor(codec)
	if err != nil {
		return nil, err
	}
	return []kgo.Opt{kgo.WithCompressor(c)}, nil
}

// teeSink writes every scrape to each sink in turn (Kafka.Write only
// encodes and enqueues).
type teeSink []*produce.Kafka

func (t teeSink) Write(s *produce.Scrape) error {
	for _, k := range t {
		if err := k.Write(s); err != nil {
			return err
		}
	}
	return nil
}

func kafkaBytes(t *testing.T, broker, logDir, mode string) {
	var (
		targets    = envInt(t, "SHOAL_BENCH_KAFKA_TARGETS", 300)
		interval   = time.Duration(envInt(t, "SHOAL_BENCH_KAFKA_INTERVAL_MS", 15000)) * time.Millisecond
		scrapes    = envInt(t, "SHOAL_BENCH_KAFKA_SCRAPES", 4)
		partitions = int32(envInt(t, "SHOAL_BENCH_KAFKA_PARTITIONS", 6))
	)
	ctx := t.Context()
	payload := nodeFixture(t)

	// The farm: one farm of all targets (shared), or one farm per target
	// with its own values (distinct).
	var addrs []string
	var farms []*farm.Farm
	defer func() {
		for _, f := range farms {
			f.Close()
		}
	}()
	switch mode {
	case "shared":
		f, err := farm.Start(ctx, farm.Config{Targets: targets, Payload: payload, Gzip: true})
		if err != nil {
			t.Fatal(err)
		}
		farms = append(farms, f)
		addrs = f.Addrs()
	case "distinct":
		for i := range targets {
			f, err := farm.Start(ctx, farm.Config{Targets: 1, Payload: perTarget(payload, i), Gzip: true})
			if err != nil {
				t.Fatal(err)
			}
			farms = append(farms, f)
			addrs = append(addrs, f.Addrs()...)
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}

	// Topics and sinks.
	adm, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	admin := kadm.NewClient(adm)
	settings := wireSettings()
	run := time.Now().UnixNano()
	topics := make([]string, len(settings))
	for i := range settings {
		topics[i] = fmt.Sprintf("bytes-%s-%d-%d", mode, run, i)
	}
	resp, err := admin.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	var sinks teeSink
	regs := make([]*prometheus.Registry, len(settings))
	for i, s := range settings {
		cfg := produce.DefaultKafkaConfig()
		cfg.Brokers = []string{broker}
		cfg.Topic = topics[i]
		cfg.Format = s.format
		cfg.MemberID = "bench:9464"
		cfg.FlushTimeout = 30 * time.Second
		cfg.Linger = s.linger
		if cfg.ClientOpts, err = compressorOpts(s.comp); err != nil {
			t.Fatal(err)
		}
		regs[i] = prometheus.NewRegistry()
		k, err := produce.NewKafka(cfg, regs[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, k)
	}
	closeSinks := func() {
		for _, k := range sinks {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := k.Close(cctx); err != nil {
				t.Error(err)
			}
			cancel()
		}
		sinks = nil
	}
	defer func() {
		if sinks != nil {
			closeSinks()
		}
	}()

	// The engine, as Run builds it.
	bc := &Config{Targets: targets, Interval: interval}
	bc.setDefaults()
	eng, err := engine.New(engine.Config{Version: "bench"}, sinks, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(jobConfig(bc, addrs), "bench.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.ApplyConfig(c); err != nil {
		t.Fatal(err)
	}
	eng.SyncTargets(jobName, c.ScrapeConfigs[0].StaticConfigs)
	ectx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(ectx) }()
	// Every target is due once per interval, phases spread over it.
	time.Sleep(time.Duration(scrapes)*interval + interval/10)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var served farm.Stats
	for _, f := range farms {
		served = served.Add(f.Total())
	}
	closeSinks()

	t.Logf("mode=%s targets=%d interval=%s partitions=%d: %d scrapes served, %.1f scrapes/s/partition, %d samples/scrape",
		mode, targets, interval, partitions, served.Scrapes,
		float64(targets)/interval.Seconds()/float64(partitions), served.Samples/max(served.Scrapes, 1))
	t.Logf("%-36s %10s %10s %8s %8s %9s %9s", "setting", "samples", "log bytes", "B/sample", "batches", "rec/batch", "value B/s")
	for i, s := range settings {
		g, err := regs[i].Gather()
		if err != nil {
			t.Fatal(err)
		}
		var samples, records, valueBytes float64
		for _, mf := range g {
			if len(mf.GetMetric()) == 0 || mf.GetMetric()[0].GetCounter() == nil {
				continue
			}
			v := mf.GetMetric()[0].GetCounter().GetValue()
			switch mf.GetName() {
			case "shoal_kafka_samples_total":
				samples = v
			case "shoal_kafka_records_total":
				records = v
			case "shoal_kafka_bytes_total":
				valueBytes = v
			}
		}
		size, batches, recs, err := segmentStats(logDir, topics[i])
		if err != nil {
			t.Fatal(err)
		}
		if int64(records) != recs {
			t.Errorf("%s: %v records acknowledged, %d in the log", s.name(), records, recs)
		}
		t.Logf("%-36s %10.0f %10d %8.2f %8d %9.2f %9.1f", s.name(), samples, size, float64(size)/samples,
			batches, float64(recs)/float64(max(batches, 1)), valueBytes/samples)
	}
	for _, tp := range topics {
		admin.DeleteTopics(context.Background(), tp)
	}
}

// segmentStats sums the sizes of topic's *.log segments under logDir and
// walks their record batches (v2 framing: baseOffset int64, batchLength
// int32, …, recordsCount int32 at byte 57).
func segmentStats(logDir, topic string) (size, batches, records int64, err error) {
	files, err := filepath.Glob(filepath.Join(logDir, topic+"-*", "*.log"))
	if err != nil {
		return 0, 0, 0, err
	}
	if len(files) == 0 {
		return 0, 0, 0, fmt.Errorf("no segments for topic %s under %s", topic, logDir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, 0, 0, err
		}
		size += int64(len(b))
		for p := 0; p+61 <= len(b); {
			n := int(binary.BigEndian.Uint32(b[p+8:]))
			batches++
			records += int64(binary.BigEndian.Uint32(b[p+57:]))
			p += 12 + n
		}
	}
	return size, batches, records, nil
}

// perTarget returns payload with target i's own values: every finite
// sample value other than 0 and 1 is scaled by a factor in [0.5, 1.5)
// drawn for the target (integers stay integers). 0 and 1 (flags, info
// metrics, idle counters) are the same on every host.
func perTarget(payload []byte, i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	f := 0.5 + r.Float64()
	var b bytes.Buffer
	for line := range strings.Lines(string(payload)) {
		body := strings.TrimSuffix(line, "\n")
		if body == "" || body[0] == '#' {
			b.WriteString(line)
			continue
		}
		// The value follows the label set, or the name when there is none.
		s := strings.LastIndexByte(body, '}') + 1
		if s == 0 {
			s = strings.IndexByte(body, ' ')
		}
		rest := strings.TrimLeft(body[s:], " ")
		vs := len(body) - len(rest)
		ve := strings.IndexByte(rest, ' ')
		if ve < 0 {
			ve = len(rest)
		}
		v, err := strconv.ParseFloat(rest[:ve], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v == 0 || v == 1 {
			b.WriteString(line)
			continue
		}
		nv := v * f
		if v == math.Trunc(v) {
			nv = math.Round(nv)
		}
		b.WriteString(body[:vs])
		b.WriteString(strconv.FormatFloat(nv, 'g', -1, 64))
		b.WriteString(rest[ve:])
		b.WriteString("\n")
	}
	return b.Bytes()
}
