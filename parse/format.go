package parse

import (
	"errors"
	"fmt"
	"mime"
	"strconv"
)

// Format is an exposition format this package can parse.
type Format uint8

const (
	// FormatText is the Prometheus text format (text/plain, versions 0.0.4
	// and 1.0.0), parsed like textparse.PromParser.
	FormatText Format = iota
	// FormatOpenMetrics is OpenMetrics 1.0.0 / 0.0.1
	// (application/openmetrics-text), parsed like
	// textparse.OpenMetricsParser with _created series kept as samples.
	FormatOpenMetrics
)

// String returns "text" or "openmetrics"; these are the values used in
// benchmark names and metrics labels.
func (f Format) String() string {
	switch f {
	case FormatText:
		return "text"
	case FormatOpenMetrics:
		return "openmetrics"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// ErrContentType is wrapped by every error FormatFor returns: the response's
// Content-Type does not name a format this package parses and no usable
// fallback scrape protocol was configured. Prometheus fails such a scrape.
var ErrContentType = errors.New("unsupported content type")

// FormatFor picks the parser format for a response's Content-Type header
// value, following Prometheus 3 (textparse's extractMediaType):
//
//   - text/plain (any version) is FormatText; application/openmetrics-text is
//     FormatOpenMetrics, except version=2.0.0.
//   - A blank, unparsable or unsupported Content-Type (including protobuf
//     and OpenMetrics 2.0, which this package does not parse) is an error
//     wrapping ErrContentType, unless fallback is non-empty: then the
//     fallback's format is returned with a nil error. Prometheus logs a
//     warning in that case; callers wanting one can compare the result with
//     FormatFor(contentType, "").
//   - fallback is a config.ScrapeProtocol spelling: PrometheusText0.0.4,
//     PrometheusText1.0.0, OpenMetricsText0.0.1, OpenMetricsText1.0.0 and
//     OpenMetricsText2.0.0 are accepted (the last maps to FormatOpenMetrics,
//     because Prometheus turns a fallback into its bare media type and so
//     parses it with the OpenMetrics 1.0 parser); PrometheusProto or any other
//     value makes the fallback unusable.
//
// The common header values sent by client libraries are matched without
// allocating; others go through mime.ParseMediaType. contentType is not
// retained. Safe for concurrent use.
func FormatFor(contentType []byte, fallback string) (Format, error) {
	// The compiler does not allocate for a switch on string(b).
	switch string(contentType) {
	case "text/plain; version=0.0.4; charset=utf-8",
		"text/plain; version=0.0.4",
		"text/plain; version=1.0.0; charset=utf-8",
		"text/plain; charset=utf-8",
		"text/plain":
		return FormatText, nil
	case "application/openmetrics-text; version=1.0.0; charset=utf-8",
		"application/openmetrics-text; version=0.0.1; charset=utf-8",
		"application/openmetrics-text; version=1.0.0",
		"application/openmetrics-text; version=0.0.1":
		return FormatOpenMetrics, nil
	}
	return formatForSlow(string(contentType), fallback)
}

func formatForSlow(contentType, fallback string) (Format, error) {
	if contentType == "" {
		return useFallback(fallback, "blank Content-Type", nil)
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return useFallback(fallback, fmt.Sprintf("cannot parse Content-Type %q", contentType), err)
	}
	version := params["version"]
	switch mediaType {
	case "text/plain":
		return FormatText, nil
	case "application/openmetrics-text":
		if version == "2.0.0" {
			return useFallback(fallback, fmt.Sprintf("OpenMetrics 2.0 Content-Type %q is not supported", contentType), nil)
		}
		return FormatOpenMetrics, nil
	}
	return useFallback(fallback, fmt.Sprintf("received unsupported Content-Type %q", contentType), nil)
}

// useFallback maps a config.ScrapeProtocol to a Format, or reports why the
// Content-Type could not be used (what) when there is no usable fallback.
func useFallback(fallback, what string, cause error) (Format, error) {
	switch fallback {
	case "PrometheusText0.0.4", "PrometheusText1.0.0":
		return FormatText, nil
	case "OpenMetricsText0.0.1", "OpenMetricsText1.0.0", "OpenMetricsText2.0.0":
		return FormatOpenMetrics, nil
	case "":
		if cause != nil {
			return 0, fmt.Errorf("%w: %s and no fallback_scrape_protocol: %w", ErrContentType, what, cause)
		}
		return 0, fmt.Errorf("%w: %s and no fallback_scrape_protocol", ErrContentType, what)
	}
	return 0, fmt.Errorf("%w: %s and fallback_scrape_protocol %q is not a text format", ErrContentType, what, fallback)
}
