// Command devcert makes a self-signed development TLS certificate for the
// compose gateway (nginx): an ECDSA P-256 key and a certificate for
// localhost, 127.0.0.1 and ::1 (plus any -host given), valid for 90 days.
// It writes fullchain.pem and privkey.pem (0600) into -out, which is
// git-ignored (deploy/tls). Never use it in production; see docs/deploy.md.
//
//	go run ./deploy/devcert -out deploy/tls [-host zsm.example.test]
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	out := flag.String("out", "deploy/tls", "directory for fullchain.pem and privkey.pem")
	hosts := flag.String("host", "", "extra comma-separated DNS names or IPs")
	days := flag.Int("days", 90, "validity in days")
	force := flag.Bool("force", false, "overwrite an existing certificate")
	flag.Parse()
	if err := run(*out, *hosts, *days, *force); err != nil {
		fmt.Fprintln(os.Stderr, "devcert:", err)
		os.Exit(1)
	}
}

func run(out, hosts string, days int, force bool) error {
	cert, key := filepath.Join(out, "fullchain.pem"), filepath.Join(out, "privkey.pem")
	if !force {
		if _, err := os.Stat(cert); err == nil {
			fmt.Printf("%s exists; keeping it (-force to replace)\n", cert)
			return nil
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	certPEM, keyPEM, err := Make(append([]string{"localhost", "127.0.0.1", "::1"}, split(hosts)...), time.Duration(days)*24*time.Hour)
	if err != nil {
		return err
	}
	// nginx's master process reads the key as root before dropping privileges.
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s (self-signed, for development only)\n", cert, key)
	return nil
}

func split(s string) []string {
	var out []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// Make returns a self-signed certificate and its PKCS#8 key, both PEM.
func Make(hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"zsm development"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}
