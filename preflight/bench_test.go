package preflight

import (
	"bufio"
	"bytes"
	"testing"
)

func BenchmarkDetect(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"amps_frame", "\x00\x00\x00\x0e{\"c\":\"logon\"}"},
		{"preflight", "GET /amps/json HTTP/1.1\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader([]byte(bc.in))
			br := bufio.NewReaderSize(r, 4096)
			for b.Loop() {
				r.Reset([]byte(bc.in))
				br.Reset(r)
				if _, err := Detect(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadRequest(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"official_client", "GET /user/prefix/amps/json HTTP/1.1\r\nHost: broker.example:9007\r\nConnection: upgrade\r\nUpgrade: tcp\r\nToken: 0123456789abcdef\r\n\r\n"},
		{"go_client", "GET /amps HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Probe: yes\r\n\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader([]byte(bc.in))
			br := bufio.NewReaderSize(r, 4096)
			b.SetBytes(int64(len(bc.in)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset([]byte(bc.in))
				br.Reset(r)
				req, err := ReadRequest(br, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Classify(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
