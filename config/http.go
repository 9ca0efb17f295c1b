package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// tlsVersions are the min_version names Prometheus accepts.
var tlsVersions = map[string]uint16{
	"TLS10": tls.VersionTLS10,
	"TLS11": tls.VersionTLS11,
	"TLS12": tls.VersionTLS12,
	"TLS13": tls.VersionTLS13,
}

// AuthHeader returns the value of the Authorization header to send to the
// job's targets, or "" when the job has no authentication:
//
//   - basic_auth: "Basic " + base64(username:password);
//   - authorization: Type + " " + credentials (Type defaults to Bearer);
//   - bearer_token or bearer_token_file: "Bearer " + token.
//
// Every *_file field is read at each call, and its content trimmed of
// surrounding white space, as Prometheus does, so rotated credentials are
// picked up by the next call: the engine calls AuthHeader when it (re)builds
// a job's scrape state, and may call it per scrape if credentials rotate
// faster than jobs reload. An unreadable file is an error naming the field;
// the engine should fail the scrape rather than send no credentials.
// Like Prometheus, the engine should not send the header on a redirect to
// another host. AuthHeader is safe for concurrent use.
func (c *ScrapeConfig) AuthHeader() (string, error) {
	return authHeader(c.BasicAuth, c.Authorization, c.BearerToken, c.BearerTokenFile)
}

// AuthHeader returns the Authorization header for requests to Consul, as
// [ScrapeConfig.AuthHeader] does; username and password count as
// basic_auth, as in Prometheus. The token is not part of it: it goes in
// X-Consul-Token.
func (c *ConsulSDConfig) AuthHeader() (string, error) {
	ba := c.BasicAuth
	if ba == nil && (c.Username != "" || c.Password != "") {
		ba = &BasicAuth{Username: c.Username, Password: c.Password}
	}
	return authHeader(ba, c.Authorization, c.BearerToken, c.BearerTokenFile)
}

func authHeader(ba *BasicAuth, a *Authorization, bearer, bearerFile string) (string, error) {
	switch {
	case ba != nil:
		user, err := secret(ba.Username, ba.UsernameFile, "basic_auth username_file")
		if err != nil {
			return "", err
		}
		pass, err := secret(ba.Password, ba.PasswordFile, "basic_auth password_file")
		if err != nil {
			return "", err
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), nil
	case a != nil:
		cred, err := secret(a.Credentials, a.CredentialsFile, "authorization credentials_file")
		if err != nil {
			return "", err
		}
		typ := strings.TrimSpace(a.Type)
		if typ == "" {
			typ = "Bearer"
		}
		return typ + " " + cred, nil
	case bearer != "" || bearerFile != "":
		tok, err := secret(bearer, bearerFile, "bearer_token_file")
		if err != nil {
			return "", err
		}
		return "Bearer " + tok, nil
	}
	return "", nil
}

// secret returns inline, or the trimmed content of file when file is set.
func secret(inline, file, field string) (string, error) {
	if file == "" {
		return inline, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", field, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Build returns a *tls.Config for connecting to the job's targets. It reads
// CAFile now (the engine calls Build on each reload, which picks up a new
// CA); the client certificate and key are loaded now to report errors early
// and again at every handshake through GetClientCertificate, so a rotated
// pair is used by the next connection without a reload. MinVersion defaults
// to TLS 1.2; an empty ServerName leaves it to the HTTP client, which uses
// the target's host. The returned config is new on each call and owned by
// the caller.
func (t *TLSConfig) Build() (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, // only when the config asks for it
		MinVersion:         tls.VersionTLS12,
	}
	if t.MinVersion != "" {
		v, ok := tlsVersions[t.MinVersion]
		if !ok {
			return nil, fmt.Errorf("tls_config: unknown min_version %q", t.MinVersion)
		}
		cfg.MinVersion = v
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_config: reading ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_config: ca_file %q holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, fmt.Errorf("tls_config: cert_file and key_file must be set together")
		}
		certFile, keyFile := t.CertFile, t.KeyFile
		load := func() (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("tls_config: loading cert_file %q and key_file %q: %w", certFile, keyFile, err)
			}
			return &c, nil
		}
		if _, err := load(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return load() }
	}
	return cfg, nil
}
