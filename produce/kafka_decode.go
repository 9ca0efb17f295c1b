package produce

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// DecodeRecordValue decodes the value of a record the Kafka sink wrote,
// calling fn for each float sample in message order, and returns the
// format it found. contentType is the record's content-type header: RW1's
// or RW2's picks that message; anything else (a missing header, another
// producer's spelling) tries both and keeps the one that finds series (the
// two messages use different field numbers, so the wrong one decodes to
// nothing rather than to garbage). Histogram samples, which shoal does not
// write, are skipped. fn's labels are valid only during the call.
//
// This is the reference consumer for README.md's "Record format" and what
// `shoal tail` prints; it uses Prometheus's own generated protobuf types.
func DecodeRecordValue(contentType string, value []byte, fn func(ls labels.Labels, t int64, v float64)) (RecordFormat, error) {
	switch contentType {
	case RW1.ContentType():
		return RW1, decodeRW1(value, fn)
	case RW2.ContentType():
		return RW2, decodeRW2(value, fn)
	}
	var r1 prompb.WriteRequest
	err1 := r1.Unmarshal(value)
	if err1 == nil && len(r1.Timeseries) > 0 {
		return RW1, eachRW1(&r1, fn)
	}
	var r2 writev2.Request
	err2 := r2.Unmarshal(value)
	if err2 == nil && len(r2.Timeseries) > 0 {
		return RW2, eachRW2(&r2, fn)
	}
	if err1 == nil || err2 == nil {
		return 0, nil // an empty message in either format
	}
	return 0, fmt.Errorf("decode record value (content-type %q): neither remote-write 1.0 (%v) nor 2.0 (%v)", contentType, err1, err2)
}

func decodeRW1(value []byte, fn func(labels.Labels, int64, float64)) error {
	var r prompb.WriteRequest
	if err := r.Unmarshal(value); err != nil {
		return fmt.Errorf("decode prometheus.WriteRequest: %w", err)
	}
	return eachRW1(&r, fn)
}

func eachRW1(r *prompb.WriteRequest, fn func(labels.Labels, int64, float64)) error {
	var b labels.ScratchBuilder
	for i := range r.Timeseries {
		ts := &r.Timeseries[i]
		ls := ts.ToLabels(&b, nil)
		for _, s := range ts.Samples {
			fn(ls, s.Timestamp, s.Value)
		}
	}
	return nil
}

func decodeRW2(value []byte, fn func(labels.Labels, int64, float64)) error {
	var r writev2.Request
	if err := r.Unmarshal(value); err != nil {
		return fmt.Errorf("decode io.prometheus.write.v2.Request: %w", err)
	}
	return eachRW2(&r, fn)
}

func eachRW2(r *writev2.Request, fn func(labels.Labels, int64, float64)) error {
	if len(r.Timeseries) > 0 && (len(r.Symbols) == 0 || r.Symbols[0] != "") {
		return fmt.Errorf("decode io.prometheus.write.v2.Request: symbols[0] must be the empty string")
	}
	var b labels.ScratchBuilder
	for i := range r.Timeseries {
		ts := &r.Timeseries[i]
		ls, err := ts.ToLabels(&b, r.Symbols)
		if err != nil {
			return fmt.Errorf("decode io.prometheus.write.v2.Request: series %d: %w", i, err)
		}
		for _, s := range ts.Samples {
			fn(ls, s.Timestamp, s.Value)
		}
	}
	return nil
}
