package engine

// This file is the only one in engine/ that imports fasthttp (STYLE 14):
// the rest of the package sees fetch() and a body it may read until release.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"

	"github.com/shoal-scraper/shoal/config"
)

// errBodyTooLarge is returned when a response exceeds body_size_limit, after
// decompression (Prometheus applies the limit to the decompressed body).
var errBodyTooLarge = errors.New("body size limit exceeded")

// maxRedirects is net/http's limit, which Prometheus inherits.
const maxRedirects = 10

// httpClient fetches targets of one job. It is safe for concurrent use; one
// instance per job, because TLS and authentication are per job.
type httpClient struct {
	c         *fasthttp.Client
	accept    string
	userAgent string
	sc        *config.ScrapeConfig
	authFiles bool // credentials come from files: re-read them (authHeader)

	authMu     sync.Mutex
	auth       string // Authorization header value, or ""
	authErr    error  // why the credentials files could not be read
	authAt     time.Time
	limit      int64 // body_size_limit in bytes; 0 = none
	follow     bool
	gzipReader sync.Pool // *gzip.Reader
	bufs       sync.Pool // *bytes.Buffer holding gunzipped bodies
}

func newHTTPClient(sc *config.ScrapeConfig, version string) (*httpClient, error) {
	var tlsCfg *tls.Config
	if sc.Scheme == "https" {
		var err error
		if tlsCfg, err = sc.TLSConfig.Build(); err != nil {
			return nil, fmt.Errorf("job %q: tls_config: %w", sc.JobName, err)
		}
	}
	// Credentials in files are re-read while scraping (see authHeader);
	// inline ones are fixed for the job's life.
	fromFiles := sc.BearerTokenFile != "" ||
		(sc.BasicAuth != nil && (sc.BasicAuth.UsernameFile != "" || sc.BasicAuth.PasswordFile != "")) ||
		(sc.Authorization != nil && sc.Authorization.CredentialsFile != "")
	var auth string
	if !fromFiles {
		var err error
		if auth, err = sc.AuthHeader(); err != nil {
			return nil, fmt.Errorf("job %q: %w", sc.JobName, err)
		}
	}
	limit := int64(sc.BodySizeLimit)
	c := &fasthttp.Client{
		Name:                     "shoal",
		NoDefaultUserAgentHeader: true,
		TLSConfig:                tlsCfg,
		// A target is scraped by one worker at a time, so a handful of
		// connections per host covers targets that share a host:port
		// (several jobs, or params) without letting one slow host pin many.
		MaxConnsPerHost: 8,
		// Keep connections across scrapes: a new TCP (and TLS) handshake
		// per scrape costs more than the scrape itself for small targets.
		MaxIdleConnDuration: sc.Interval() + 10*time.Second,
		ReadBufferSize:      16 << 10, // headers only; bodies go to pooled buffers
		// fasthttp enforces this while reading, before buffering the rest.
		// For gzip bodies the decompressed size is checked in gunzip.
		MaxResponseBodySize:    int(limit),
		DisablePathNormalizing: true,
		// Headers are small: refuse absurd ones from a misbehaving target.
		DisableHeaderNamesNormalizing: false,
	}
	return &httpClient{
		c:         c,
		sc:        sc,
		authFiles: fromFiles,
		accept:    acceptHeader(sc.ScrapeProtocols),
		userAgent: "shoal/" + version,
		auth:      auth,
		limit:     limit,
		follow:    sc.FollowRedirects,
	}, nil
}

// credentialsRefresh is how long credentials read from files are reused.
// Prometheus reads them on every request; rotated tokens (Kubernetes
// service account tokens, say) are replaced well before they expire, so
// re-reading them twice a minute, not on every scrape of every target, is
// enough.
const credentialsRefresh = 30 * time.Second

// authHeader returns the Authorization header to send, re-reading
// credentials files when the cached value is older than credentialsRefresh.
// An unreadable file fails the scrape rather than sending no credentials.
func (c *httpClient) authHeader(now time.Time) (string, error) {
	if !c.authFiles {
		return c.auth, nil
	}
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if c.authAt.IsZero() || now.Sub(c.authAt) >= credentialsRefresh {
		c.auth, c.authErr = c.sc.AuthHeader()
		c.authAt = now
	}
	return c.auth, c.authErr
}

// acceptHeader mirrors Prometheus's: the configured protocols in order of
// preference with decreasing q, then */* last.
func acceptHeader(ps []config.ScrapeProtocol) string {
	if len(ps) == 0 {
		ps = config.DefaultScrapeProtocols
	}
	var b bytes.Buffer
	w := len(ps) + 1
	for _, p := range ps {
		switch p {
		case config.OpenMetricsText1_0_0:
			b.WriteString("application/openmetrics-text;version=1.0.0")
		case config.OpenMetricsText0_0_1:
			b.WriteString("application/openmetrics-text;version=0.0.1")
		case config.PrometheusText1_0_0:
			b.WriteString("text/plain;version=1.0.0")
		case config.PrometheusText0_0_4:
			b.WriteString("text/plain;version=0.0.4")
		default:
			continue
		}
		b.WriteString(";q=0.")
		b.WriteString(strconv.Itoa(w))
		b.WriteByte(',')
		w--
	}
	b.WriteString("*/*;q=0.")
	b.WriteString(strconv.Itoa(w))
	return b.String()
}

// response is one fetched body. Body and ContentType are valid until release.
type response struct {
	resp        *fasthttp.Response
	buf         *bytes.Buffer // gunzipped body, or nil
	Body        []byte
	ContentType []byte
	c           *httpClient
}

// release returns the response's memory to the pools. Nothing read from the
// response may be used after release.
func (r *response) release() {
	if r.buf != nil {
		// Refuse to keep outliers: one huge target must not pin memory.
		if r.buf.Cap() <= 64<<20 {
			r.buf.Reset()
			r.c.bufs.Put(r.buf)
		}
		r.buf = nil
	}
	if r.resp != nil {
		fasthttp.ReleaseResponse(r.resp)
		r.resp = nil
	}
	r.Body, r.ContentType = nil, nil
}

// fetch GETs url with the job's headers and returns the (decompressed) body.
// deadline bounds the whole exchange, redirects included. sizeHint is the
// last body size of this target, to size the gunzip buffer in one go.
func (c *httpClient) fetch(url string, timeout time.Duration, deadline time.Time, sizeHint int, r *response) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	r.resp, r.c = resp, c

	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Set("Accept", c.accept)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
	auth, err := c.authHeader(time.Now())
	if err != nil {
		return err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}

	for redirects := 0; ; redirects++ {
		if err := c.c.DoDeadline(req, resp, deadline); err != nil {
			switch {
			case errors.Is(err, fasthttp.ErrBodyTooLarge):
				return errBodyTooLarge
			case errors.Is(err, fasthttp.ErrTimeout):
				return fmt.Errorf("context deadline exceeded (scrape timeout %s)", timeout)
			}
			return err
		}
		code := resp.StatusCode()
		if code == fasthttp.StatusOK {
			break
		}
		if c.follow && fasthttp.StatusCodeIsRedirect(code) && redirects < maxRedirects {
			loc := resp.Header.Peek("Location")
			if len(loc) > 0 {
				// Resolve relative to the current URI, as net/http does,
				// and, like net/http, do not send credentials to another
				// host.
				host := string(req.URI().Host())
				req.URI().UpdateBytes(loc)
				if string(req.URI().Host()) != host {
					req.Header.Del("Authorization")
				}
				resp.Reset()
				continue
			}
		}
		if fasthttp.StatusCodeIsRedirect(code) && redirects >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return fmt.Errorf("server returned HTTP status %d %s", code, fasthttp.StatusMessage(code))
	}

	r.ContentType = resp.Header.ContentType()
	body := resp.Body()
	if !bytes.EqualFold(resp.Header.ContentEncoding(), []byte("gzip")) {
		r.Body = body
		return nil
	}
	return c.gunzip(body, sizeHint, r)
}

// gunzipper is a pooled gzip reader with the bytes.Reader it reads from,
// so a gzip scrape allocates neither.
type gunzipper struct {
	zr *gzip.Reader
	br bytes.Reader
}

// gunzip decompresses body into a pooled buffer, enforcing the body limit on
// the decompressed size while reading.
func (c *httpClient) gunzip(body []byte, sizeHint int, r *response) error {
	g, _ := c.gzipReader.Get().(*gunzipper)
	if g == nil {
		g = new(gunzipper)
	}
	defer func() {
		g.br.Reset(nil)
		c.gzipReader.Put(g)
	}()
	g.br.Reset(body)
	var err error
	if g.zr == nil {
		g.zr, err = gzip.NewReader(&g.br)
	} else {
		err = g.zr.Reset(&g.br)
	}
	if err != nil {
		g.zr = nil
		return fmt.Errorf("decompressing gzip body: %w", err)
	}

	buf, _ := c.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	r.buf = buf
	if sizeHint > 0 {
		buf.Grow(sizeHint + sizeHint/8)
	}
	var src io.Reader = g.zr
	if c.limit > 0 {
		src = &limitedReader{r: g.zr, n: c.limit + 1}
	}
	if _, err := buf.ReadFrom(src); err != nil {
		return fmt.Errorf("decompressing gzip body: %w", err)
	}
	if c.limit > 0 && int64(buf.Len()) > c.limit {
		return errBodyTooLarge
	}
	r.Body = buf.Bytes()
	return nil
}

// limitedReader is io.LimitedReader without the allocation of io.LimitReader
// escaping through an interface.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// close releases idle connections.
func (c *httpClient) close() { c.c.CloseIdleConnections() }
