package parse_test

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/shoal-scraper/shoal/parse"
)

// The engine's loop: labels only for series the target's cache lacks, and
// staleness from the cache after each scrape.
func Example() {
	cache := parse.NewCache[labels.Labels]()
	var p parse.Parser
	for _, body := range []string{
		"# TYPE up gauge\nup{job=\"a\"} 1\nup{job=\"b\"} 1\n",
		"# TYPE up gauge\nup{job=\"a\"} 0 1700000000000\n",
	} {
		f, err := parse.FormatFor([]byte("text/plain; version=0.0.4; charset=utf-8"), "")
		if err != nil {
			panic(err)
		}
		cache.Begin()
		for p.Reset([]byte(body), f); p.Next(); {
			l, _, ok := cache.Get(p.Series())
			if !ok {
				if l, err = p.Labels(); err != nil {
					break // p.Err() reports it too
				}
				cache.Put(p.Series(), l)
			}
			ts, hasTS := p.Timestamp()
			fmt.Println(l, p.Value(), ts, hasTS)
		}
		if err := p.Err(); err != nil {
			cache.Abort()
			fmt.Println("scrape failed:", err)
		}
		cache.Stale(func(l labels.Labels) { fmt.Println("stale:", l) })
	}
	// Output:
	// {__name__="up", job="a"} 1 0 false
	// {__name__="up", job="b"} 1 0 false
	// {__name__="up", job="a"} 0 1700000000000 true
	// stale: {__name__="up", job="b"}
}
