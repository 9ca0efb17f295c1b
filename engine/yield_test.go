package engine

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"testing"

	"github.com/shoal-scraper/shoal/internal/yieldtest"
	"github.com/shoal-scraper/shoal/parse"
)

// On one P a huge exposition does not keep the timing wheel and the other
// targets' scrapes off the processor while it is gunzipped and parsed: they
// get a turn every yieldBytes and every yieldSamples. The checks allow a
// turn or two to go to another goroutine (a collection's worker, a timer);
// without the yields the counter got no turn in the parse and 2 in the
// gunzip of 4 MiB (the runtime's 10 ms preemption).
func TestHugeScrapeYields(t *testing.T) {
	const n = 5 * yieldSamples
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "huge_metric{pod=\"pod-%d\",namespace=\"ns-%d\"} %d\n", i, i%97, i)
	}
	body := b.Bytes()

	t.Run("parse", func(t *testing.T) {
		e, tg := appendTarget(t)
		var p parse.Parser
		appendOnce(t, e, tg, &p, body) // the series enter the cache
		var got int64
		turns := yieldtest.Turns(func() { got = int64(appendOnce(t, e, tg, &p, body)) })
		if got != n {
			t.Fatalf("appended %d samples, want %d", got, n)
		}
		if want := int64(n/yieldSamples) - 1; turns < want {
			t.Errorf("another goroutine ran %d times while %d samples were parsed on one P, want at least %d (once per %d)", turns, n, want, yieldSamples)
		}
	})

	t.Run("gunzip", func(t *testing.T) {
		var raw bytes.Buffer
		for raw.Len() < 8*yieldBytes {
			raw.Write(body)
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw.Bytes())
		zw.Close()
		c := &httpClient{bufs: newBufPools()}
		var r response
		var err error
		turns := yieldtest.Turns(func() { err = c.gunzip(gz.Bytes(), 0, &r) })
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Body, raw.Bytes()) {
			t.Fatalf("gunzipped %d bytes, want the %d written", len(r.Body), raw.Len())
		}
		if want := int64(raw.Len()/yieldBytes) - 2; turns < want {
			t.Errorf("another goroutine ran %d times while %d bytes were gunzipped on one P, want at least %d (once per %d)", turns, raw.Len(), want, yieldBytes)
		}
	})
}
