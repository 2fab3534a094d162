package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// testCA makes a CA and, signed by it, a certificate for 127.0.0.1; it returns the CA's PEM
// file and the server's key pair.
func testCA(t *testing.T) (caFile string, srv tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startTLSNATS starts an in-process nats-server with JetStream that requires TLS with cert,
// until the test ends, and returns its port.
func startTLSNATS(t *testing.T, cert tls.Certificate) int {
	t.Helper()
	port := freePort(t)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), TLS: true, TLSTimeout: 2,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return port
}

// A server that requires TLS, with a certificate of a private CA: --nats-tls-ca is honoured
// (the host connects and uses JetStream through it), and without it, or with another CA, the
// command fails at once saying TLS failed and which flag to check — also for a nats:// URL
// (nats.go upgrades to TLS when the server requires it). A tls:// URL to a server without
// TLS fails saying so.
func TestNATSTLSCAIsHonouredAndFailuresSayWhy(t *testing.T) {
	caFile, cert := testCA(t)
	otherCA, _ := testCA(t)
	port := startTLSNATS(t, cert)
	plain := startNATS(t)
	addr := "127.0.0.1:" + itoa(port)
	for _, tc := range []struct {
		name string
		o    ConnOptions
		want string // "" connects
	}{
		{"tls:// with the CA", ConnOptions{URLs: "tls://" + addr, TLSCA: caFile}, ""},
		{"nats:// with the CA", ConnOptions{URLs: "nats://" + addr, TLSCA: caFile}, ""},
		{"nats:// without a CA", ConnOptions{URLs: "nats://" + addr}, "check --nats-tls-ca"},
		{"tls:// with another CA", ConnOptions{URLs: "tls://" + addr, TLSCA: otherCA}, "check --nats-tls-ca"},
		{"tls:// to a server without TLS", ConnOptions{URLs: strings.Replace(plain.url(), "nats://", "tls://", 1), TLSCA: caFile}, "offers no TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Timeout = 2 * time.Second
			start := time.Now()
			nc, err := tc.o.Connect()
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Connect took %v", d)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				defer nc.Close()
				if !nc.TLSRequired() {
					t.Error("connected without TLS")
				}
				js, _ := tc.o.JetStream(nc)
				if _, err := js.AccountInfo(t.Context()); err != nil {
					t.Errorf("JetStream through TLS: %v", err)
				}
				return
			}
			if err == nil {
				nc.Close()
				t.Fatalf("connected; want an error saying %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "TLS") {
				t.Errorf("error %q: want TLS and %q", err, tc.want)
			}
		})
	}
}

// The long-running components (the exporter, the policy follower) dial once and retry on
// their own: a TLS failure is said in their log, with the flag to check, not only retried.
func TestNATSTLSFailureIsLoggedByExporterAndFollower(t *testing.T) {
	_, cert := testCA(t)
	port := startTLSNATS(t, cert)
	o := ConnOptions{URLs: "nats://127.0.0.1:" + itoa(port), Timeout: 2 * time.Second}
	elg := &testLog{t: t}
	e, err := NewExporter(ExporterConfig{Conn: o, Host: "web-1", SpoolDir: t.TempDir(), Log: elg.log})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e.Close(ctx)
	}()
	flg := &testLog{t: t}
	f, err := StartPolicyFollower(FollowerConfig{Conn: o, Host: "web-1", StateDir: t.TempDir(), Apply: (&guardStub{}).apply, Log: flg.log})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !elg.has("--nats-tls-ca") || !flg.has("--nats-tls-ca") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line naming --nats-tls-ca in 10s; exporter:\n%s\nfollower:\n%s", elg, flg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }
