package gunzip

import (
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// corpus returns contents that exercise every block type and code shape:
// the node_exporter fixture, text, runs, random bytes, and empty.
func corpus(t testing.TB) map[string][]byte {
	node, err := os.ReadFile("../../parse/testdata/node_exporter.prom")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 200_000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	// Skewed bytes give long Huffman codes (subtables).
	skewed := make([]byte, 300_000)
	for i := range skewed {
		skewed[i] = byte(bitsLen(rng.Uint32()))*7 + byte(rng.IntN(2))
	}
	var words strings.Builder
	for words.Len() < 500_000 {
		words.WriteString([]string{"node_cpu", "seconds_total", "{mode=\"idle\"}", " 1.5e+09\n", "a", "bb"}[rng.IntN(6)])
	}
	return map[string][]byte{
		"empty":  nil,
		"byte":   {'x'},
		"node":   node,
		"node10": bytes.Repeat(node, 10),
		"random": random,
		"skewed": skewed,
		"words":  []byte(words.String()),
		"zeros":  make([]byte, 1<<20),
		"abc":    bytes.Repeat([]byte("abcdefg"), 10_000),
	}
}

func bitsLen(x uint32) int {
	n := 0
	for x&1 == 1 {
		n++
		x >>= 1
	}
	return n
}

// compressors return gzip streams of content as real encoders write them.
var compressors = map[string]func([]byte) []byte{
	"std-default": func(b []byte) []byte { return stdZip(b, stdgzip.DefaultCompression) },
	"std-best":    func(b []byte) []byte { return stdZip(b, stdgzip.BestCompression) },
	"std-fast":    func(b []byte) []byte { return stdZip(b, stdgzip.BestSpeed) },
	"std-store":   func(b []byte) []byte { return stdZip(b, stdgzip.NoCompression) },
	"std-huffman": func(b []byte) []byte { return stdZip(b, stdgzip.HuffmanOnly) },
	"klauspost-1": func(b []byte) []byte { return kZip(b, 1) },
	"klauspost-5": func(b []byte) []byte { return kZip(b, 5) },
	"klauspost-9": func(b []byte) []byte { return kZip(b, 9) },
	"klauspost-stateless": func(b []byte) []byte {
		return kZip(b, kgzip.StatelessCompression)
	},
}

func stdZip(b []byte, level int) []byte {
	var buf bytes.Buffer
	w, err := stdgzip.NewWriterLevel(&buf, level)
	if err != nil {
		panic(err)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func kZip(b []byte, level int) []byte {
	var buf bytes.Buffer
	w, err := kgzip.NewWriterLevel(&buf, level)
	if err != nil {
		panic(err)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// stdGunzip is the reference: what compress/gzip makes of z.
func stdGunzip(z []byte) ([]byte, error) {
	r, err := stdgzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestDecodeMatchesCompressGzip(t *testing.T) {
	var d Decoder
	for cname, content := range corpus(t) {
		for zname, zip := range compressors {
			z := zip(content)
			got, err := d.Decode(nil, z, 0)
			if err != nil {
				t.Errorf("%s/%s: %v", cname, zname, err)
				continue
			}
			if !bytes.Equal(got, content) {
				t.Errorf("%s/%s: content differs (%d bytes, want %d)", cname, zname, len(got), len(content))
			}
			// Into a buffer sized from the trailer: no growth.
			buf := make([]byte, 0, Size(z)+Slack)
			got, err = d.Decode(buf, z, 0)
			if err != nil || !bytes.Equal(got, content) {
				t.Errorf("%s/%s: into a sized buffer: %v", cname, zname, err)
			} else if len(content) > 0 && &got[0] != &buf[:1][0] {
				t.Errorf("%s/%s: grew a buffer sized from the trailer", cname, zname)
			}
		}
	}
}

func TestDecodeAppends(t *testing.T) {
	z := stdZip([]byte("hello, world"), 6)
	var d Decoder
	got, err := d.Decode([]byte("prefix:"), z, 0)
	if err != nil || string(got) != "prefix:hello, world" {
		t.Fatalf("got %q, %v", got, err)
	}
	// The limit is on the content, not on what dst held.
	if got, err := d.Decode([]byte("prefix:"), z, len("hello, world")); err != nil || string(got) != "prefix:hello, world" {
		t.Fatalf("limit of exactly the content after a prefix: %q, %v", got, err)
	}
	// A bad second member fails, with the first member's content
	// returned.
	got, err = d.Decode(nil, append(slices.Clone(z), 0x1f, 0x8b, 99), 0)
	if err == nil || string(got) != "hello, world" {
		t.Fatalf("bad second member: %q, %v", got, err)
	}
}

func TestDecodeMembersAndHeaderFields(t *testing.T) {
	var buf bytes.Buffer
	w := stdgzip.NewWriter(&buf)
	w.Name, w.Comment, w.Extra = "metrics.txt", "a comment", []byte("extra field")
	w.Write([]byte("first member\n"))
	w.Close()
	w2 := stdgzip.NewWriter(&buf)
	w2.Write([]byte("second member\n"))
	w2.Close()
	z := buf.Bytes()
	var d Decoder
	got, err := d.Decode(nil, z, 0)
	if err != nil || string(got) != "first member\nsecond member\n" {
		t.Fatalf("got %q, %v", got, err)
	}

	// A header CRC (FHCRC), which compress/gzip's writer never sets.
	one := stdZip([]byte("x"), 6)
	h := append([]byte{}, one[:10]...)
	h[3] |= flagHdrCrc
	sum := crc32IEEE(h)
	h = append(h, byte(sum), byte(sum>>8))
	h = append(h, one[10:]...)
	if got, err := d.Decode(nil, h, 0); err != nil || string(got) != "x" {
		t.Fatalf("FHCRC: got %q, %v", got, err)
	}
	h[10]++
	if _, err := d.Decode(nil, h, 0); err == nil || !strings.Contains(err.Error(), "header checksum") {
		t.Fatalf("bad FHCRC: %v", err)
	}
}

// A damaged or cut stream fails with an error, never a panic, and never
// returns content that compress/gzip would not.
func TestDecodeDamaged(t *testing.T) {
	node := corpus(t)["node"]
	var d Decoder
	for zname, zip := range compressors {
		z := zip(node)
		// Every cut of one stream of each block type; of the others,
		// a sample.
		step := 1
		if zname != "std-default" {
			step = 37
		}
		for n := 0; n < len(z); n += step {
			if _, err := d.Decode(nil, z[:n], 0); err == nil {
				t.Fatalf("%s: cut at %d of %d: no error", zname, n, len(z))
			}
		}
		rng := rand.New(rand.NewPCG(3, 4))
		for range 300 {
			bad := append([]byte{}, z...)
			for range 1 + rng.IntN(3) {
				bad[rng.IntN(len(bad))] ^= byte(1 << rng.IntN(8))
			}
			got, err := d.Decode(nil, bad, 0)
			want, werr := stdGunzip(bad)
			if err == nil && (werr != nil || !bytes.Equal(got, want)) {
				t.Fatalf("%s: damaged stream decoded where compress/gzip says %v", zname, werr)
			}
		}
	}
	for _, tc := range []struct {
		name, want string
		z          []byte
	}{
		{"empty", "empty body", nil},
		{"not gzip", "not a gzip header", []byte("# HELP up\nup 1\n")},
		{"trailing garbage", "not a gzip header", append(stdZip([]byte("up 1\n"), 6), "garbage!!!!"...)},
	} {
		_, err := d.Decode(nil, tc.z, 0)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

func TestDecodeLimit(t *testing.T) {
	content := corpus(t)["words"]
	var d Decoder
	for zname, zip := range compressors {
		z := zip(content)
		if _, err := d.Decode(nil, z, len(content)-1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: limit one byte short: %v, want ErrTooLarge", zname, err)
		}
		got, err := d.Decode(nil, z, len(content))
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("%s: limit exactly the size: %v", zname, err)
		}
		// A limit stops the decoder early, not after inflating everything.
		out, err := d.Decode(make([]byte, 0, 1000+Slack), z, 1000)
		if !errors.Is(err, ErrTooLarge) || cap(out) > 100_000 {
			t.Errorf("%s: limit 1000: %v, %d bytes of buffer", zname, err, cap(out))
		}
	}
}

func TestDecodeAllocatesNothingIntoASizedBuffer(t *testing.T) {
	z := stdZip(corpus(t)["node"], 6)
	var d Decoder
	buf := make([]byte, 0, Size(z)+Slack)
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := d.Decode(buf, z, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Decode", allocs)
	}
}

func crc32IEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

func FuzzDecode(f *testing.F) {
	f.Add(stdZip([]byte("up 1\n"), 6))
	f.Add(stdZip(bytes.Repeat([]byte("abc"), 1000), 9))
	f.Add(kZip([]byte("node_cpu_seconds_total{cpu=\"0\"} 1\n"), 1))
	f.Fuzz(func(t *testing.T, z []byte) {
		var d Decoder
		got, err := d.Decode(nil, z, 1<<20)
		want, werr := stdGunzip(z)
		if err == nil {
			if werr != nil || !bytes.Equal(got, want) {
				t.Fatalf("decoded %d bytes where compress/gzip says %v", len(got), werr)
			}
		} else if werr == nil && len(want) <= 1<<20 && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v where compress/gzip decodes %d bytes", err, len(want))
		}
	})
}

func BenchmarkGunzip(b *testing.B) {
	content := corpus(b)["node"]
	z := kZip(content, 5) // what the bench farm serves
	b.Run("how=shoal", func(b *testing.B) {
		var d Decoder
		buf := make([]byte, 0, Size(z)+Slack)
		b.SetBytes(int64(len(content)))
		for b.Loop() {
			d.Decode(buf, z, 0)
		}
	})
	b.Run("how=klauspost", func(b *testing.B) {
		zr, _ := kgzip.NewReader(bytes.NewReader(z))
		benchReader(b, z, len(content), zr)
	})
	b.Run("how=std", func(b *testing.B) {
		zr, _ := stdgzip.NewReader(bytes.NewReader(z))
		benchReader(b, z, len(content), zr)
	})
}

// benchReader gunzips z with a streaming reader, reset for each run, into
// a reused buffer: how the engine used klauspost's reader before.
func benchReader(b *testing.B, z []byte, n int, zr interface {
	io.Reader
	Reset(io.Reader) error
}) {
	var br bytes.Reader
	var out bytes.Buffer
	b.SetBytes(int64(n))
	for b.Loop() {
		br.Reset(z)
		zr.Reset(&br)
		out.Reset()
		out.ReadFrom(zr)
	}
}

func TestSize(t *testing.T) {
	content := corpus(t)["words"]
	z := stdZip(content, 6)
	if got := Size(z); got != len(content) {
		t.Errorf("Size = %d, want %d", got, len(content))
	}
	lie := slices.Clone(z)
	lie[len(lie)-1] = 0xff // claims about 4 GiB from a few hundred KB
	if got := Size(lie); got != 0 {
		t.Errorf("Size of a trailer beyond 1032:1 = %d, want 0", got)
	}
	if got := Size(z[:17]); got != 0 {
		t.Errorf("Size of 17 bytes = %d, want 0", got)
	}
}
