package produce

import (
	"bytes"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// maxEncodeFuzzInput caps the label specification a fuzz input carries.
const maxEncodeFuzzInput = 16 << 10

// FuzzEncode encodes arbitrary label sets (any bytes, invalid UTF-8 and
// empty strings included), values (any bit pattern) and timestamps in both
// formats, whole, again in steady state, and split in two as the sink
// splits a scrape, and checks that the reference decoders read back the
// input. Run it for a minute after a change to the encoders:
//
//	go test ./produce -run '^$' -fuzz '^FuzzEncode$' -fuzztime=60s -fuzzminimizetime=5s
//
// spec holds the series: records separated by 0xff, each a list of strings
// separated by 0xfe read as name, value, name, value, ... (a last name alone
// gets the value ""). Byte-identical records are the same *Series, so specs
// with repeated records carry duplicate samples.
func FuzzEncode(f *testing.F) {
	node := nodeFixture(f)
	var spec []byte
	for _, smp := range node.Samples[:40] {
		smp.Series.Labels().Range(func(l labels.Label) {
			spec = append(append(append(spec, l.Name...), 0xfe), l.Value...)
			spec = append(spec, 0xfe)
		})
		spec[len(spec)-1] = 0xff
	}
	f.Add(spec, uint64(0x7ff0000000000002), int64(1_700_000_000_000), uint16(7))
	f.Add([]byte("__name__\xfeup\xfejob\xfej\xff__name__\xfeup\xfejob\xfej\xff__name__\xfex"), uint64(0x8000000000000000), int64(-1), uint16(1))
	f.Add([]byte("日本\xfe語\xfe\xfe\xff\xff\xfe\xfe"+string(bytes.Repeat([]byte("long"), 100))), uint64(0x7ff8000000000001), int64(-1<<63), uint16(0))
	f.Add([]byte{}, uint64(0), int64(0), uint16(0))
	f.Fuzz(func(t *testing.T, spec []byte, vbits uint64, ts int64, cut uint16) {
		if len(spec) > maxEncodeFuzzInput {
			return
		}
		byRecord := map[string]*Series{}
		s := &Scrape{}
		for i, rec := range bytes.Split(spec, []byte{0xff}) {
			sr := byRecord[string(rec)]
			if sr == nil {
				var ls []labels.Label
				strs := bytes.Split(rec, []byte{0xfe})
				for j := 0; j < len(strs); j += 2 {
					l := labels.Label{Name: string(strs[j])}
					if j+1 < len(strs) {
						l.Value = string(strs[j+1])
					}
					ls = append(ls, l)
				}
				lset := labels.New(ls...)
				sr = NewSeries(lset)
				byRecord[string(rec)] = sr
			}
			v := vbits ^ uint64(i)*0x9e3779b97f4a7c15
			s.Samples = append(s.Samples, Sample{sr, ts ^ int64(i), math.Float64frombits(v)})
		}
		for _, f := range formats {
			e := NewEncoder(f)
			first := checkEncode(t, e, s)
			if again := checkEncode(t, e, s); !bytes.Equal(first, again) {
				t.Fatalf("%v: steady-state encoding differs", f)
			}
			c := int(cut) % (len(s.Samples) + 1)
			a, b := *s, *s
			a.Samples, b.Samples = s.Samples[:c], s.Samples[c:]
			checkEncode(t, e, &a)
			checkEncode(t, e, &b)
			if back := checkEncode(t, NewEncoder(f), s); !bytes.Equal(first, back) {
				t.Fatalf("%v: encoding after a split differs", f)
			}
		}
	})
}
