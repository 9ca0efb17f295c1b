// Package gunzip decompresses a gzip stream held whole in memory, as a
// scraper holds a response body, into a buffer sized from the stream's
// own trailer.
//
// Why not compress/gzip or klauspost/compress/gzip: both are streaming
// readers. They pull the input a byte at a time through an io.ByteReader
// and push the output through a 32 KiB window that is then copied out, so
// every byte is touched twice and every input byte costs an interface
// call or a bounds-checked read. Inflating gzip bodies was half of shoal's
// CPU at saturation (bench/README.md). With the whole input in memory
// and the output in one buffer, the decoder refills its bit buffer eight
// bytes at a time, copies matches within the output eight bytes at a
// time, and resolves most Huffman codes with one table lookup (the
// layout libdeflate made standard). BenchmarkGunzip compares it with both.
//
// The format is RFC 1951 (deflate) inside RFC 1952 (gzip), with what
// compress/gzip accepts: several members back to back, each with its
// CRC-32 and size checked; trailing bytes that are not a member are an
// error. Huffman codes must be complete, except a code of one symbol, as
// compress/flate requires.
package gunzip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"runtime"
)

// ErrTooLarge is returned when the content is longer than the limit.
var ErrTooLarge = errors.New("gunzip: content larger than the limit")

// Error is a malformed stream: what is wrong, and the offset in the input
// where the decoder found it.
type Error struct {
	Offset int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("gunzip: %s (input byte %d)", e.Reason, e.Offset)
}

// YieldBytes is how much output Decode writes between calls to
// runtime.Gosched when Decoder.Yield is set: inflating a 17 MB body takes
// tens of milliseconds, which on one P would hold every other goroutine.
const YieldBytes = 1 << 20

// Decoder decompresses gzip streams. Its zero value is ready to use; it
// holds only scratch space (the Huffman tables, about 60 KB), so keep one
// per goroutine or in a pool. Not safe for concurrent use.
type Decoder struct {
	// Yield makes Decode call runtime.Gosched after every YieldBytes of
	// output.
	Yield bool

	lit  [litTableSize]uint32
	dist [distTableSize]uint32
	pre  [preTableSize]uint32
	lens [maxLit + maxDist]uint8
	// scratch of build
	sorted [maxLit]uint16
	codes  [maxLit]uint32
}

// Table entries (uint32): bits 0-7 how many bits the entry consumes; bits
// 8-11 its kind; bits 12-15 its extra bits (a length's or a distance's),
// or for a subtable pointer the subtable's index bits; bits 16-31 its
// value: a literal byte, a length or distance base, or the subtable's
// offset. The zero entry is invalid: a code the stream did not define.
const (
	kindLit   = 1 << 8
	kindMatch = 1 << 9 // a length (lit table) or a distance (dist table)
	kindEOB   = 1 << 10
	kindSub   = 1 << 11
)

const (
	maxLit  = 288 // literal/length symbols, 286 and 287 invalid
	maxDist = 32  // distance symbols, 30 and 31 invalid
	maxPre  = 19

	litBits  = 10
	distBits = 8
	preBits  = 7

	// Subtables hold codes longer than the root bits. A subtable serves
	// one root prefix and has at most 2^(15-root) entries; a prefix
	// needs at least one code, so there are at most as many subtables as
	// symbols. Loose bounds, checked by build.
	litTableSize  = 1<<litBits + maxLit<<(15-litBits)
	distTableSize = 1<<distBits + maxDist<<(15-distBits)
	preTableSize  = 1 << preBits
)

var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	preOrder    = [maxPre]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// litEntry, distEntry and preEntry are what a symbol's entry holds besides
// its length.
func litEntry(sym int) uint32 {
	switch {
	case sym < 256:
		return kindLit | uint32(sym)<<16
	case sym == 256:
		return kindEOB
	case sym < 286:
		i := sym - 257
		return kindMatch | uint32(lengthExtra[i])<<12 | uint32(lengthBase[i])<<16
	}
	return 0 // 286, 287: invalid
}

func distEntry(sym int) uint32 {
	if sym < 30 {
		return kindMatch | uint32(distExtra[sym])<<12 | uint32(distBase[sym])<<16
	}
	return 0
}

func preEntry(sym int) uint32 { return kindLit | uint32(sym)<<16 }

// The fixed Huffman code's tables (RFC 1951 3.2.6), built once.
var fixedLit, fixedDist = func() (*[litTableSize]uint32, *[distTableSize]uint32) {
	var d Decoder
	for i := range 288 {
		switch {
		case i < 144:
			d.lens[i] = 8
		case i < 256:
			d.lens[i] = 9
		case i < 280:
			d.lens[i] = 7
		default:
			d.lens[i] = 8
		}
	}
	if err := d.build(d.lit[:], litBits, d.lens[:288], litEntry); err != "" {
		panic(err)
	}
	for i := range 30 {
		d.lens[i] = 5
	}
	// 30 codes of 5 bits are incomplete; the fixed code has 32, two of
	// them invalid.
	d.lens[30], d.lens[31] = 5, 5
	if err := d.build(d.dist[:], distBits, d.lens[:32], distEntry); err != "" {
		panic(err)
	}
	return &d.lit, &d.dist
}()

// build fills table for the canonical Huffman code with code lengths lens
// (symbol i has length lens[i], 0 for unused), root bits in the first
// table, longer codes in subtables after it. It returns why the code is
// invalid, or "".
func (d *Decoder) build(table []uint32, root uint, lens []uint8, entry func(int) uint32) string {
	var count [16]uint16
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	left := 1
	total := 0
	maxLen := uint(0)
	for l := 1; l < 16; l++ {
		left = left<<1 - int(count[l])
		if left < 0 {
			return "over-subscribed Huffman code"
		}
		if count[l] > 0 {
			maxLen = uint(l)
		}
		total += int(count[l])
	}
	clear(table[:1<<root])
	if total == 0 {
		return "" // an empty code: every lookup is invalid
	}
	if left > 0 && (total != 1 || maxLen != 1) {
		return "incomplete Huffman code"
	}

	// Symbols in canonical order (by length, then by symbol) with their
	// codes, bit-reversed: deflate sends a code's first bit lowest.
	var offs [16]uint16
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + count[l]
	}
	sorted := d.sorted[:total]
	for s, l := range lens {
		if l != 0 {
			sorted[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	codes := d.codes[:total]
	code, i := uint32(0), 0
	for l := uint32(1); l < 16; l++ {
		for range count[l] {
			codes[i] = bits.Reverse32(code)>>(32-l) | l<<16
			code++
			i++
		}
		code <<= 1
	}

	const lenShift = 16
	rootMask := uint32(1)<<root - 1
	next := uint32(1) << root // where the next subtable goes
	for i := 0; i < total; {
		rev, l := codes[i]&0xffff, codes[i]>>lenShift
		if l <= uint32(root) {
			e := entry(int(sorted[i])) | l
			for k := rev; k < 1<<root; k += 1 << l {
				table[k] = e
			}
			i++
			continue
		}
		// Codes longer than root with the same first root bits are
		// adjacent in canonical order, the longest last: one subtable
		// holds them, as deep as that one.
		prefix := rev & rootMask
		j := i + 1
		for j < total && codes[j]&rootMask == prefix {
			j++
		}
		sb := codes[j-1]>>lenShift - uint32(root)
		end := next + 1<<sb
		if int(end) > len(table) {
			return "Huffman table overflow"
		}
		table[prefix] = kindSub | sb<<12 | next<<16 | uint32(root)
		for ; i < j; i++ {
			rev, l := codes[i]&0xffff, codes[i]>>lenShift-uint32(root)
			e := entry(int(sorted[i])) | l
			for k := rev >> root; k < 1<<sb; k += 1 << l {
				table[next+k] = e
			}
		}
		next = end
	}
	return ""
}

// bitReader reads src least significant bit first. The bits above n in
// buf may hold the next bytes already (the fast refill loads eight at
// once): they are loaded again, the same, by the next refill.
type bitReader struct {
	src      []byte
	p        int    // next byte of src to load
	buf      uint64 // bits not consumed yet, the next one lowest
	n        uint   // bits in buf
	overread int    // zero bytes loaded past the end of src
}

// refill tops buf up to at least 56 bits. Past the end of src it loads
// zeros, up to 8 bytes: a stream that needs more is truncated.
func (b *bitReader) refill() error {
	if b.p+8 <= len(b.src) {
		b.buf |= binary.LittleEndian.Uint64(b.src[b.p:]) << b.n
		k := (63 - b.n) >> 3
		b.p += int(k)
		b.n += k << 3
		return nil
	}
	for b.n <= 56 {
		if b.p < len(b.src) {
			b.buf |= uint64(b.src[b.p]) << b.n
			b.p++
		} else {
			if b.overread++; b.overread > 8 {
				return &Error{Offset: len(b.src), Reason: "unexpected end of stream"}
			}
		}
		b.n += 8
	}
	return nil
}

// need refills when fewer than k bits are buffered.
func (b *bitReader) need(k uint) error {
	if b.n < k {
		return b.refill()
	}
	return nil
}

func (b *bitReader) take(k uint) uint32 {
	v := uint32(b.buf & (1<<k - 1))
	b.buf >>= k
	b.n -= k
	return v
}

// pos returns the offset of the first byte not consumed, the partly
// consumed byte counting as consumed, and aligns the reader there. An
// error if the stream consumed bytes past the end of src.
func (b *bitReader) align() (int, error) {
	whole := int(b.n >> 3)
	if whole < b.overread {
		return 0, &Error{Offset: len(b.src), Reason: "unexpected end of stream"}
	}
	p := b.p - (whole - b.overread)
	*b = bitReader{src: b.src, p: p}
	return p, nil
}

// offset is an estimate of where in src the reader is, for errors.
func (b *bitReader) offset() int {
	return max(0, b.p-int(b.n>>3)+b.overread)
}

const (
	gzipID1     = 0x1f
	gzipID2     = 0x8b
	gzipDeflate = 8
	flagText    = 1 << 0
	flagHdrCrc  = 1 << 1
	flagExtra   = 1 << 2
	flagName    = 1 << 3
	flagComment = 1 << 4
)

// Decode appends the content of the gzip stream src to dst and returns
// it. With limit > 0, content longer than limit bytes fails with
// ErrTooLarge. dst grows as append would grow it; give it the capacity of
// Size(src) (plus Slack) to decode without allocating.
func (d *Decoder) Decode(dst, src []byte, limit int) ([]byte, error) {
	if len(src) == 0 {
		return dst, &Error{Offset: 0, Reason: "empty body"}
	}
	o := len(dst)
	out := dst[:cap(dst)]
	if limit > 0 {
		limit += o // the limit is on the content, not on what dst held
	}
	p := 0
	for {
		start := o
		hdr, err := header(src, p)
		if err != nil {
			return out[:o], err
		}
		br := bitReader{src: src, p: hdr}
		out, o, err = d.inflate(out, o, start, &br, limit)
		if err != nil {
			return out[:min(o, len(out))], err
		}
		p, err = br.align()
		if err != nil {
			return out[:o], err
		}
		if len(src)-p < 8 {
			return out[:o], &Error{Offset: len(src), Reason: "unexpected end of stream in the trailer"}
		}
		sum := binary.LittleEndian.Uint32(src[p:])
		size := binary.LittleEndian.Uint32(src[p+4:])
		if crc32.ChecksumIEEE(out[start:o]) != sum {
			return out[:o], &Error{Offset: p, Reason: "checksum mismatch"}
		}
		if uint32(o-start) != size {
			return out[:o], &Error{Offset: p + 4, Reason: "size mismatch"}
		}
		p += 8
		if p == len(src) {
			return out[:o], nil
		}
	}
}

// Slack is the room past the content Decode wants in dst's capacity: it
// copies matches eight bytes at a time and checks for room once per
// symbol.
const Slack = 258 + 8

// Size returns the content size src's trailer states (the ISIZE field:
// the size mod 2³²; for a stream of several members, its last member's),
// or 0 if src is too short to have one or the trailer claims more than
// deflate can make of src (1032:1). The trailer is the sender's word: a
// size hint, never a bound.
func Size(src []byte) int {
	if len(src) < 18 { // header 10, trailer 8
		return 0
	}
	n := int(binary.LittleEndian.Uint32(src[len(src)-4:]))
	if n > 1032*len(src) {
		return 0
	}
	return n
}

// header checks the gzip member header at src[p:] and returns the offset
// of its deflate stream.
func header(src []byte, p int) (int, error) {
	if len(src)-p < 10 {
		return 0, &Error{Offset: p, Reason: "unexpected end of stream in the header"}
	}
	if src[p] != gzipID1 || src[p+1] != gzipID2 {
		return 0, &Error{Offset: p, Reason: "not a gzip header"}
	}
	if src[p+2] != gzipDeflate {
		return 0, &Error{Offset: p + 2, Reason: fmt.Sprintf("compression method %d, not deflate", src[p+2])}
	}
	flg := src[p+3] // reserved bits ignored, as compress/gzip does
	q := p + 10
	if flg&flagExtra != 0 {
		if len(src)-q < 2 {
			return 0, &Error{Offset: q, Reason: "unexpected end of stream in the header"}
		}
		q += 2 + int(binary.LittleEndian.Uint16(src[q:]))
	}
	for _, f := range [2]byte{flagName, flagComment} {
		if flg&f != 0 {
			for q < len(src) && src[q] != 0 {
				q++
			}
			q++ // the zero
		}
	}
	if flg&flagHdrCrc != 0 {
		if q+2 <= len(src) && uint16(crc32.ChecksumIEEE(src[p:q])) != binary.LittleEndian.Uint16(src[q:]) {
			return 0, &Error{Offset: q, Reason: "header checksum mismatch"}
		}
		q += 2
	}
	if q > len(src) {
		return 0, &Error{Offset: len(src), Reason: "unexpected end of stream in the header"}
	}
	return q, nil
}

// grow returns out with room for at least need bytes past o, keeping
// out[:o]: doubled, as append grows.
func grow(out []byte, o, need int) []byte {
	n := max(2*len(out), o+need, 4096)
	b := make([]byte, n)
	copy(b, out[:o])
	return b
}

// inflate decodes one deflate stream from br into out at o; the member's
// content starts at start (a match may not reach before it). It returns
// out, perhaps grown, and the new end.
func (d *Decoder) inflate(out []byte, o, start int, br *bitReader, limit int) ([]byte, int, error) {
	nextYield := o + YieldBytes
	if !d.Yield {
		nextYield = int(^uint(0) >> 1)
	}
	for {
		if err := br.need(3); err != nil {
			return out, o, err
		}
		final := br.take(1)
		var lt *[litTableSize]uint32
		var dt *[distTableSize]uint32
		switch br.take(2) {
		case 0:
			var err error
			if out, o, err = stored(out, o, br, limit); err != nil {
				return out, o, err
			}
			if final == 1 {
				return out, o, nil
			}
			continue
		case 1:
			lt, dt = fixedLit, fixedDist
		case 2:
			if err := d.dynamic(br); err != nil {
				return out, o, err
			}
			lt, dt = &d.lit, &d.dist
		default:
			return out, o, &Error{Offset: br.offset(), Reason: "invalid block type 3"}
		}

		// The block's symbols. Locals, not br's fields, so that they
		// stay in registers.
		src := br.src
		bitbuf, bitsleft, p := br.buf, br.n, br.p
		stop := min(len(out)-Slack, nextYield)
		if limit > 0 {
			stop = min(stop, limit+1)
		}
		for {
			if o >= stop {
				if limit > 0 && o > limit {
					return out, o, ErrTooLarge
				}
				if o >= nextYield {
					runtime.Gosched()
					nextYield = o + YieldBytes
				}
				if o > len(out)-Slack {
					out = grow(out, o, Slack+1)
				}
				stop = min(len(out)-Slack, nextYield)
				if limit > 0 {
					stop = min(stop, limit+1)
				}
			}
			// A match takes at most 15+5+15+13 = 48 bits.
			if bitsleft < 48 {
				if p+8 <= len(src) {
					bitbuf |= binary.LittleEndian.Uint64(src[p:]) << bitsleft
					k := (63 - bitsleft) >> 3
					p += int(k)
					bitsleft += k << 3
				} else {
					br.buf, br.n, br.p = bitbuf, bitsleft, p
					if err := br.refill(); err != nil {
						return out, o, err
					}
					bitbuf, bitsleft, p = br.buf, br.n, br.p
				}
			}
			e := lt[bitbuf&(1<<litBits-1)]
			if e&kindSub != 0 {
				bitbuf >>= litBits
				bitsleft -= litBits
				e = lt[e>>16+uint32(bitbuf)&(1<<(e>>12&15)-1)]
			}
			bitbuf >>= e & 0xff
			bitsleft -= uint(e & 0xff)
			if e&kindLit != 0 {
				out[o] = byte(e >> 16)
				o++
				continue
			}
			if e&kindMatch == 0 {
				br.buf, br.n, br.p = bitbuf, bitsleft, p
				if e&kindEOB != 0 {
					break
				}
				return out, o, &Error{Offset: br.offset(), Reason: "invalid literal/length code"}
			}
			extra := uint(e >> 12 & 15)
			length := int(e>>16) + int(bitbuf&(1<<extra-1))
			bitbuf >>= extra
			bitsleft -= extra

			e = dt[bitbuf&(1<<distBits-1)]
			if e&kindSub != 0 {
				bitbuf >>= distBits
				bitsleft -= distBits
				e = dt[e>>16+uint32(bitbuf)&(1<<(e>>12&15)-1)]
			}
			bitbuf >>= e & 0xff
			bitsleft -= uint(e & 0xff)
			if e&kindMatch == 0 {
				br.buf, br.n, br.p = bitbuf, bitsleft, p
				return out, o, &Error{Offset: br.offset(), Reason: "invalid distance code"}
			}
			extra = uint(e >> 12 & 15)
			dist := int(e>>16) + int(bitbuf&(1<<extra-1))
			bitbuf >>= extra
			bitsleft -= extra
			if dist > o-start {
				br.buf, br.n, br.p = bitbuf, bitsleft, p
				return out, o, &Error{Offset: br.offset(), Reason: "distance too far back"}
			}

			// The loop's top left Slack bytes of room at o, and dist
			// <= o-start: both windows are in out.
			s := o - dist
			w := out[o : o+Slack]
			switch {
			case dist >= 8:
				// Eight bytes at a time, the first sixteen without a
				// loop (most matches are short): each read ends at or
				// before the write it feeds, so overlap repeats as it
				// must; writes past length land in the slack.
				r := out[s : s+Slack]
				binary.LittleEndian.PutUint64(w[0:8], binary.LittleEndian.Uint64(r[0:8]))
				binary.LittleEndian.PutUint64(w[8:16], binary.LittleEndian.Uint64(r[8:16]))
				for k := 16; k < length; k += 8 {
					binary.LittleEndian.PutUint64(w[k:k+8], binary.LittleEndian.Uint64(r[k:k+8]))
				}
			case dist == 1:
				c := out[s]
				for k := range w[:length] {
					w[k] = c
				}
			default:
				// Byte by byte, not copy: the match overlaps what it
				// writes and must repeat it (copy would move it).
				for k := range length {
					out[o+k] = out[s+k]
				}
			}
			o += length
		}
		if final == 1 {
			return out, o, nil
		}
	}
}

// stored copies a stored block's bytes (br is just past the block type).
func stored(out []byte, o int, br *bitReader, limit int) ([]byte, int, error) {
	p, err := br.align()
	if err != nil {
		return out, o, err
	}
	src := br.src
	if len(src)-p < 4 {
		return out, o, &Error{Offset: len(src), Reason: "unexpected end of stream in a stored block"}
	}
	n := int(binary.LittleEndian.Uint16(src[p:]))
	if binary.LittleEndian.Uint16(src[p+2:]) != ^uint16(n) {
		return out, o, &Error{Offset: p, Reason: "stored block length check failed"}
	}
	p += 4
	if len(src)-p < n {
		return out, o, &Error{Offset: len(src), Reason: "unexpected end of stream in a stored block"}
	}
	if limit > 0 && o+n > limit {
		return out, o, ErrTooLarge
	}
	if o+n+Slack > len(out) {
		out = grow(out, o, n+Slack)
	}
	copy(out[o:], src[p:p+n])
	*br = bitReader{src: src, p: p + n}
	return out, o + n, nil
}

// dynamic reads a dynamic block's code lengths and builds d.lit and
// d.dist.
func (d *Decoder) dynamic(br *bitReader) error {
	if err := br.need(14); err != nil {
		return err
	}
	nlit := int(br.take(5)) + 257
	ndist := int(br.take(5)) + 1
	npre := int(br.take(4)) + 4
	if nlit > 286 {
		return &Error{Offset: br.offset(), Reason: fmt.Sprintf("%d literal/length codes, more than 286", nlit)}
	}
	if ndist > 30 {
		return &Error{Offset: br.offset(), Reason: fmt.Sprintf("%d distance codes, more than 30", ndist)}
	}
	var plens [maxPre]uint8
	for i := range npre {
		if err := br.need(3); err != nil {
			return err
		}
		plens[preOrder[i]] = uint8(br.take(3))
	}
	if why := d.build(d.pre[:], preBits, plens[:], preEntry); why != "" {
		return &Error{Offset: br.offset(), Reason: why + " (code lengths)"}
	}
	lens := d.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		if err := br.need(7 + 7); err != nil {
			return err
		}
		e := d.pre[br.buf&(1<<preBits-1)]
		if e == 0 {
			return &Error{Offset: br.offset(), Reason: "invalid code length code"}
		}
		br.take(uint(e & 0xff))
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return &Error{Offset: br.offset(), Reason: "repeat of no previous code length"}
			}
			val = lens[i-1]
			rep = 3 + int(br.take(2))
		case 17:
			rep = 3 + int(br.take(3))
		default:
			rep = 11 + int(br.take(7))
		}
		if i+rep > len(lens) {
			return &Error{Offset: br.offset(), Reason: "code lengths repeat past the last code"}
		}
		for range rep {
			lens[i] = val
			i++
		}
	}
	if lens[256] == 0 {
		return &Error{Offset: br.offset(), Reason: "no end-of-block code"}
	}
	if why := d.build(d.lit[:], litBits, lens[:nlit], litEntry); why != "" {
		return &Error{Offset: br.offset(), Reason: why + " (literals/lengths)"}
	}
	if why := d.build(d.dist[:], distBits, lens[nlit:], distEntry); why != "" {
		return &Error{Offset: br.offset(), Reason: why + " (distances)"}
	}
	return nil
}
