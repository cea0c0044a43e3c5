package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// tlsVersions maps SecureSocketProtocols tokens, lower-cased, to Go
// versions. SSLv2 and SSLv3, which AMPS also names, are refused: Go has
// neither.
var tlsVersions = map[string]uint16{
	"tlsv1":   tls.VersionTLS10,
	"tlsv1.0": tls.VersionTLS10,
	"tlsv1.1": tls.VersionTLS11,
	"tlsv1.2": tls.VersionTLS12,
	"tlsv1.3": tls.VersionTLS13,
}

// opensslCiphers maps OpenSSL names of the TLS 1.2 suites Go implements to
// Go's IDs. AMPS hands Ciphers to OpenSSL verbatim; only explicit suite
// names can be translated faithfully, so a list with OpenSSL keywords
// ("HIGH:!aNULL") keeps Go's defaults, with a warning.
var opensslCiphers = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
}

// tls13Ciphers are OpenSSL TLS 1.3 suite names; Go does not let them be
// chosen, so they are accepted and ignored.
var tls13Ciphers = map[string]bool{
	"TLS_AES_128_GCM_SHA256": true, "TLS_AES_256_GCM_SHA384": true, "TLS_CHACHA20_POLY1305_SHA256": true,
}

// LoadTLS builds the transport's *tls.Config from Certificate, PrivateKey,
// SecureSocketProtocols, Ciphers, VerifyClient, CAFile and CAPath. It
// returns t.TLSConfig when that is set, and nil, nil for a transport
// without TLS. Problems come back as an *Error.
func (t *Transport) LoadTLS() (*tls.Config, error) {
	var ds diags
	cfg := t.loadTLS(&ds, pos{path: "Transport"})
	if e, _ := ds.result(); e != nil {
		return nil, e
	}
	return cfg, nil
}

// loadTLS builds the TLS config, recording problems in ds at p (the
// transport's position).
func (t *Transport) loadTLS(ds *diags, p pos) *tls.Config {
	if t.TLSConfig != nil {
		return t.TLSConfig
	}
	if t.Certificate == "" || t.PrivateKey == "" {
		return nil
	}
	cfg := &tls.Config{}
	ok := true

	// Certificate and key are read here and not reloaded later; an
	// unreadable file or a key that does not match the certificate is an
	// error.
	cert, err := tls.LoadX509KeyPair(t.Certificate, t.PrivateKey)
	if err != nil {
		ds.errorf(CodeTLSLoad, p, "transport %q: cannot load Certificate %q with PrivateKey %q: %v", t.Name, t.Certificate, t.PrivateKey, tlsLoadReason(err))
		ok = false
	} else {
		cfg.Certificates = []tls.Certificate{cert}
	}

	if t.SecureSocketProtocols != "" {
		lo, hi, gap, err := parseTLSVersions(t.SecureSocketProtocols)
		switch {
		case err != nil:
			ds.errorf(CodeTLSProtocol, p.child("SecureSocketProtocols"), "transport %q: %v", t.Name, err)
			ok = false
		default:
			cfg.MinVersion, cfg.MaxVersion = lo, hi
			if gap {
				// A hole in the list ("TLSv1 TLSv1.3") cannot be expressed with
				// Min/MaxVersion: allow the whole span and warn.
				ds.warnf(CodeTLSProtocol, p.child("SecureSocketProtocols"), "transport %q: %q has a gap; allowing every version from the lowest to the highest", t.Name, t.SecureSocketProtocols)
			}
		}
	}

	if t.Ciphers != "" {
		suites, ok := translateCiphers(t.Ciphers)
		if !ok {
			ds.warnf(CodeTLSCiphers, p.child("Ciphers"), "transport %q: Ciphers %q not translatable; using Go defaults", t.Name, t.Ciphers)
		} else {
			cfg.CipherSuites = suites
		}
	}

	if t.VerifyClient {
		if t.CAFile == "" && t.CAPath == "" {
			ds.errorf(CodeTLSCA, p.child("VerifyClient"), "transport %q: VerifyClient requires CAFile or CAPath", t.Name)
			ok = false
		} else if pool, err := loadCAs(t.CAFile, t.CAPath); err != nil {
			ds.errorf(CodeTLSCA, p.child("CAFile"), "transport %q: %v", t.Name, err)
			ok = false
		} else {
			// VerifyClient: a client without a certificate signed by one of
			// these authorities fails the handshake, before any AMPS command.
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
			cfg.ClientCAs = pool
		}
	}
	if !ok {
		return nil
	}
	return cfg
}

// tlsLoadReason shortens crypto/tls errors to what an operator acts on.
func tlsLoadReason(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	if strings.Contains(err.Error(), "does not match") {
		return errors.New("private key does not match certificate")
	}
	return err
}

// parseTLSVersions returns the lowest and highest version listed and
// whether a version in between is missing.
func parseTLSVersions(list string) (lo, hi uint16, gap bool, err error) {
	seen := map[uint16]bool{}
	for _, tok := range strings.Fields(list) {
		v, ok := tlsVersions[strings.ToLower(tok)]
		if !ok {
			switch strings.ToLower(tok) {
			case "sslv2", "sslv3":
				return 0, 0, false, fmt.Errorf("SecureSocketProtocols: %s is not supported", tok)
			}
			return 0, 0, false, fmt.Errorf("SecureSocketProtocols: unknown protocol %q (use TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", tok)
		}
		seen[v] = true
		if lo == 0 || v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	if lo == 0 {
		return 0, 0, false, errors.New("SecureSocketProtocols: empty list")
	}
	for v := lo; v <= hi; v++ {
		if !seen[v] {
			gap = true
		}
	}
	return lo, hi, gap, nil
}

// translateCiphers maps an OpenSSL cipher list made only of explicit suite
// names; any keyword expression ("HIGH:!aNULL") makes it untranslatable.
func translateCiphers(list string) ([]uint16, bool) {
	var out []uint16
	for _, name := range strings.FieldsFunc(list, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		if tls13Ciphers[name] {
			continue
		}
		id, ok := opensslCiphers[name]
		if !ok {
			return nil, false
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil, true // TLS 1.3 names only: Go defaults are what they ask for
	}
	return out, true
}

// loadCAs builds a pool from a PEM file and every .pem file directly in a
// directory (not its subdirectories); both may be given.
func loadCAs(file, dir string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	var files []string
	if file != "" {
		files = append(files, file)
	}
	if dir != "" {
		m, err := filepath.Glob(filepath.Join(dir, "*.pem"))
		if err != nil {
			return nil, fmt.Errorf("CAPath %q: %v", dir, err)
		}
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("CAPath %q unreadable: %v", dir, err)
		}
		sort.Strings(m)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("CA file %q unreadable: %v", f, err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("CA file %q holds no PEM certificate", f)
		}
	}
	return pool, nil
}
