package produce

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// zstdWindow is the window of the batch compressor: large enough to see a
// whole default batch (kgo's batches are at most ProducerBatchMaxBytes,
// 1,000,012 bytes for the default MaxRecordBytes). Larger batches only
// come with larger records, which compress mostly within themselves.
const zstdWindow = 1 << 20

// batchCompressor is the sink's kgo.Compressor: zstd, like
// kgo.ZstdCompression(), but with a window that spans the whole batch.
//
// Why not kgo's own: it fixes the window at 64 KiB, and a node_exporter
// scrape is a 25 KB record in rw2, so a record could only refer back to
// the two before it. What makes a batch of many targets small is that
// every record shares its symbols, label references and many values with
// the others; with the whole batch in the window a batch of 40
// node_exporter scrapes of different hosts costs 3.3 B/sample instead of
// 4.9 (BenchmarkBatchZstd), and the sink as a whole takes a quarter less
// CPU (BenchmarkKafkaSink: longer matches, fewer sequences to code).
// SpeedFastest would save about a quarter of zstd's time for 9% more
// bytes; SpeedBetterCompression and SpeedBestCompression came out larger
// than the default on these batches, and slower.
//
// The frame has no content checksum: the record batch's CRC-32C already
// covers the compressed bytes, and Kafka's Java producer writes none
// either. Decoders must accept a 1 MiB window; the zstd format (RFC 8878)
// recommends that every decoder accept at least 8 MiB.
type batchCompressor struct {
	encs sync.Pool // *zstd.Encoder; EncodeAll on one encoder is not concurrent
}

func newBatchCompressor() *batchCompressor {
	c := &batchCompressor{}
	c.encs.New = func() any {
		e, err := zstd.NewWriter(nil,
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false),
			zstd.WithZeroFrames(true))
		if err != nil {
			panic(err) // only for invalid options, which are constant
		}
		return e
	}
	return c
}

// Compress implements kgo.Compressor. kgo calls it from its sink
// goroutines, concurrently; each call takes an encoder from the pool.
// Brokers too old for zstd (produce requests before v7, Kafka before 2.1)
// get the batch uncompressed.
func (c *batchCompressor) Compress(dst *bytes.Buffer, src []byte, flags ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	for _, f := range flags {
		if f == kgo.CompressDisableZstd {
			return src, kgo.CodecNone
		}
	}
	e := c.encs.Get().(*zstd.Encoder)
	defer c.encs.Put(e)
	if n := e.MaxEncodedSize(len(src)); n > dst.Cap() {
		dst.Grow(n)
	}
	return e.EncodeAll(src, dst.Bytes()[:0]), kgo.CodecZstd
}
