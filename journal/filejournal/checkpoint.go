package filejournal

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
)

// The checkpoint <Name>.clients.ack keeps the publishers' durable
// high-water marks, so they outlive the segments Truncate removes (replay
// spec §7.8). One line per client: its name (Go-quoted), sequence and the
// time of its last sequenced entry (µs since the epoch, for
// ForgetPublishersAfter), then a last line "crc <CRC-32C of the lines
// before, hex>". It is written
// to a temporary file, synced and renamed over the old one, so a crash
// leaves either checkpoint whole. At Open the marks are the maximum of the
// checkpoint and the entries scanned.

// writeCheckpoint replaces the checkpoint with high. Truncate and Close
// call it, never at once (truncMu; Close runs after the writer stopped).
func (j *Journal) writeCheckpoint(high map[string]uint64, seen map[string]int64) error {
	var b bytes.Buffer
	for name, seq := range high {
		fmt.Fprintf(&b, "%s %d %d\n", strconv.Quote(name), seq, seen[name])
	}
	fmt.Fprintf(&b, "crc %08x\n", crc32.Checksum(b.Bytes(), castagnoli))
	path := j.ackPath()
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return fmt.Errorf("journal checkpoint: %w", err)
	}
	_, err = f.Write(b.Bytes())
	if err == nil {
		err = j.opts.Sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("journal checkpoint %s: %w", path, err)
	}
	return j.syncDir()
}

func (j *Journal) loadCheckpoint() error {
	path := j.ackPath()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal checkpoint: %w", err)
	}
	bad := func(line int, why string) error {
		return fmt.Errorf("journal checkpoint %s line %d: %s: %w", path, line, why, ErrCorrupt)
	}
	body, tail, ok := cutLastLine(data)
	if !ok || !strings.HasPrefix(tail, "crc ") {
		return bad(0, "no crc line at the end")
	}
	if want := fmt.Sprintf("crc %08x", crc32.Checksum(body, castagnoli)); tail != want {
		return bad(0, "CRC mismatch")
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		sp2 := strings.LastIndexByte(t, ' ')
		sp1 := strings.LastIndexByte(t[:max(sp2, 0)], ' ')
		if sp1 < 0 {
			return bad(line, "not <quoted name> <sequence> <time>")
		}
		name, err1 := strconv.Unquote(t[:sp1])
		seq, err2 := strconv.ParseUint(t[sp1+1:sp2], 10, 64)
		at, err3 := strconv.ParseInt(t[sp2+1:], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return bad(line, "not <quoted name> <sequence> <time>")
		}
		j.notePublisher(name, seq, at)
	}
	return sc.Err()
}

// cutLastLine splits newline-terminated data into everything before its
// last line and that line (without its newline).
func cutLastLine(data []byte) ([]byte, string, bool) {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, "", false
	}
	i := bytes.LastIndexByte(data[:len(data)-1], '\n')
	return data[:i+1], string(data[i+1 : len(data)-1]), true
}
