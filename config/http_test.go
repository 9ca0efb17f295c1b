package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuthHeader(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "user"), "alice\n")
	writeFile(t, filepath.Join(dir, "pass"), "  s3cret\n")
	writeFile(t, filepath.Join(dir, "token"), "tok-1\n")
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }

	tests := []struct {
		name, doc, want, wantErr string
	}{
		{"none", doc("job_name: a"), "", ""},
		{"basic inline", doc("job_name: a", "basic_auth: {username: bob, password: pw}"), basic("bob", "pw"), ""},
		{"basic files", doc("job_name: a", "basic_auth: {username_file: user, password_file: pass}"), basic("alice", "s3cret"), ""},
		{"basic no password", doc("job_name: a", "basic_auth: {username: bob}"), basic("bob", ""), ""},
		{"authorization default type", doc("job_name: a", "authorization: {credentials: c}"), "Bearer c", ""},
		{"authorization custom type", doc("job_name: a", "authorization: {type: ' Token ', credentials: c}"), "Token c", ""},
		{"authorization file", doc("job_name: a", "authorization: {type: Token, credentials_file: token}"), "Token tok-1", ""},
		{"bearer inline", doc("job_name: a", "bearer_token: abc"), "Bearer abc", ""},
		{"bearer file", doc("job_name: a", "bearer_token_file: token"), "Bearer tok-1", ""},
		{"missing file", doc("job_name: a", "bearer_token_file: nope"), "", "bearer_token_file"},
		{"missing password file", doc("job_name: a", "basic_auth: {password_file: nope}"), "", "password_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := ParseJob([]byte(tt.doc), "t")
			if err != nil {
				t.Fatal(err)
			}
			j.SetDirectory(dir)
			got, err := j.AuthHeader()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("AuthHeader() error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("AuthHeader() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	// Files are read at each call: a rotated token is picked up.
	j, err := ParseJob([]byte(doc("job_name: a", "bearer_token_file: "+filepath.Join(dir, "token"))), "t")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "token"), "tok-2")
	if got, _ := j.AuthHeader(); got != "Bearer tok-2" {
		t.Errorf("after rotation AuthHeader() = %q", got)
	}
}

// testPKI is a CA with helpers to issue certificates into files.
type testPKI struct {
	t      *testing.T
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	p := &testPKI{t: t, dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.serial = 1
	writeFile(t, filepath.Join(p.dir, "ca.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return p
}

// issue writes name.pem and name-key.pem and returns the certificate's serial.
func (p *testPKI) issue(name string, server bool) int64 {
	t := p.t
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"target.test"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(p.dir, name+".pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, filepath.Join(p.dir, name+"-key.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return p.serial
}

func TestTLSBuild(t *testing.T) {
	pki := newTestPKI(t)
	pki.issue("server", true)
	first := pki.issue("client", false)

	// A target that requires a client certificate and reports its serial.
	serverCert, err := tls.LoadX509KeyPair(filepath.Join(pki.dir, "server.pem"), filepath.Join(pki.dir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(pki.ca)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.TLS.PeerCertificates[0].SerialNumber.String()))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()

	j, err := ParseJob([]byte(doc("job_name: a", "scheme: https", "tls_config:", "  ca_file: ca.pem",
		"  cert_file: client.pem", "  key_file: client-key.pem", "  server_name: target.test", "  min_version: TLS13")), "t")
	if err != nil {
		t.Fatal(err)
	}
	j.SetDirectory(pki.dir)
	cfg, err := j.TLSConfig.Build()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ServerName != "target.test" || cfg.InsecureSkipVerify {
		t.Errorf("config %+v", cfg)
	}
	get := func() string {
		t.Helper()
		// A new transport each time forces a new handshake.
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.Clone()}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := get(); got != big.NewInt(first).String() {
		t.Errorf("server saw client serial %s, want %d", got, first)
	}
	// A rotated client pair is used by the next handshake without a new Build.
	second := pki.issue("client", false)
	if got := get(); got != big.NewInt(second).String() {
		t.Errorf("after rotation server saw serial %s, want %d", got, second)
	}

	// Defaults: TLS 1.2, system roots, no client certificate.
	var zero TLSConfig
	cfg, err = zero.Build()
	if err != nil || cfg.MinVersion != tls.VersionTLS12 || cfg.RootCAs != nil || cfg.GetClientCertificate != nil {
		t.Errorf("zero Build() = %+v, %v", cfg, err)
	}

	for _, tt := range []struct {
		name string
		cfg  TLSConfig
		want string
	}{
		{"missing ca", TLSConfig{CAFile: filepath.Join(pki.dir, "nope.pem")}, "ca_file"},
		{"ca not pem", TLSConfig{CAFile: filepath.Join(pki.dir, "client-key.pem")}, "no PEM certificate"},
		{"cert without key", TLSConfig{CertFile: filepath.Join(pki.dir, "client.pem")}, "key_file"},
		{"key does not match", TLSConfig{CertFile: filepath.Join(pki.dir, "client.pem"), KeyFile: filepath.Join(pki.dir, "server-key.pem")}, "cert_file"},
		{"bad version", TLSConfig{MinVersion: "SSL3"}, "min_version"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.cfg.Build(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
