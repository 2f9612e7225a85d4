package reactor

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// starter speaks clear text until "STARTTLS\n", answers "GO\n" in clear,
// switches to TLS with whatever followed the command, then echoes.
type starter struct {
	t   Transport
	cfg *tls.Config
	on  bool
}

func (s *starter) ConnectionMade(t Transport) { s.t = t }
func (s *starter) DataReceived(p []byte) {
	if s.on {
		s.t.Write(p)
		return
	}
	if i := bytes.Index(p, []byte("STARTTLS\n")); i >= 0 {
		s.t.Write([]byte("GO\n"))
		s.on = true
		if err := s.t.StartTLS(s.cfg, p[i+len("STARTTLS\n"):]); err != nil {
			s.t.AbortConnection()
		}
	}
}
func (s *starter) ConnectionLost(error) {}

func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// clearThenTLS is the client side: its first write carries "STARTTLS\n"
// in front of the ClientHello (so the server reads them together), and
// its first read takes the clear "GO\n" before TLS sees anything.
type clearThenTLS struct {
	net.Conn
	t            *testing.T
	wrote, heard bool
}

func (c *clearThenTLS) Write(p []byte) (int, error) {
	if !c.wrote {
		c.wrote = true
		if _, err := c.Conn.Write(append([]byte("STARTTLS\n"), p...)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *clearThenTLS) Read(p []byte) (int, error) {
	if !c.heard {
		c.heard = true
		go_ := make([]byte, 3)
		if _, err := io.ReadFull(c.Conn, go_); err != nil || string(go_) != "GO\n" {
			c.t.Errorf("clear reply %q, %v; want GO", go_, err)
		}
	}
	return c.Conn.Read(p)
}

// StartTLS on a live connection: the reply before it goes in clear, the
// bytes the client sent right behind the command reach the handshake, and
// then data flows both ways encrypted, in bulk too.
func TestStartTLS(t *testing.T) {
	cert, pool := testCert(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	tp := startPortWith(t, context.Background(), func() Protocol { return &starter{cfg: cfg} }, nil)
	raw := tp.dial(t)
	tc := tls.Client(&clearThenTLS{Conn: raw, t: t}, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake after STARTTLS: %v", err)
	}
	msg := bytes.Repeat([]byte("secret "), 100000) // 700 kB: past the socket buffers
	go tc.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(tc, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo over TLS: %v (equal %v)", err, bytes.Equal(got, msg))
	}
}
