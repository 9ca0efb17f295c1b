package produce

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The batch compressor writes zstd that Kafka clients decode, sees matches
// across the whole batch (kgo's own sees 64 KiB back), and leaves batches
// for brokers too old for zstd uncompressed.
func TestBatchCompressor(t *testing.T) {
	c := newBatchCompressor()
	decode := func(t *testing.T, b []byte) []byte {
		t.Helper()
		out, err := kgo.DefaultDecompressor().Decompress(b, kgo.CodecZstd)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("round trip", func(t *testing.T) {
		var src []byte
		enc := NewEncoder(RW2)
		for _, f := range fleetScrapes(t, 40) {
			src = enc.Append(src, f[0])
		}
		var dst bytes.Buffer
		out, codec := c.Compress(&dst, src)
		if codec != kgo.CodecZstd {
			t.Fatalf("codec %v, want zstd", codec)
		}
		if !bytes.Equal(decode(t, out), src) {
			t.Fatal("decompressed batch differs from the input")
		}
		if len(out)*10 > len(src) {
			t.Errorf("40 hosts' scrapes compressed %d → %d bytes, want at least 10×", len(src), len(out))
		}
	})

	t.Run("window", func(t *testing.T) {
		// 200 KB of noise, then the same again: with the whole batch in
		// the window the repeat costs almost nothing.
		block := make([]byte, 200<<10)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range block {
			block[i] = byte(r.Uint32())
		}
		src := append(append([]byte{}, block...), block...)
		var dst bytes.Buffer
		out, _ := c.Compress(&dst, src)
		if !bytes.Equal(decode(t, out), src) {
			t.Fatal("decompressed batch differs from the input")
		}
		if len(out) > len(block)+len(block)/20 {
			t.Errorf("a 200 KB block repeated 200 KB later compressed to %d bytes: the window does not reach it", len(out))
		}
	})

	t.Run("zstd disabled", func(t *testing.T) {
		src := []byte("produce request before v7")
		var dst bytes.Buffer
		out, codec := c.Compress(&dst, src, kgo.CompressDisableZstd)
		if codec != kgo.CodecNone || !bytes.Equal(out, src) {
			t.Errorf("codec %v, %q; want the batch uncompressed", codec, out)
		}
	})
}
