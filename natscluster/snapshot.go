package natscluster

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Snapshots bound the SOW stream (see "Bounded by snapshots" in sow.go).
//
// A snapshot at stream sequence S is the broker's ordered SOW after the
// node applied S (broker.SOWState: every record as the publish that
// recreates it, and the publishers' sequence high-water marks), stored as
// one object of the JetStream Object Store bucket SOWConfig.SnapshotBucket
// named after S ("sow-" and S in 20 digits), with S in its metadata and in
// its data. The rules:
//
//   - Writing. Every SnapshotInterval a node's snapshot goroutine looks at
//     the bucket; when the node applied something past the newest stored
//     snapshot and that one is at least half an interval old (so that, of
//     nodes ticking alike, mostly one writes), it asks the apply
//     goroutine, which encodes the snapshot between two applies (in
//     memory: the encoding is the state's size), and stores it. Several
//     nodes may write at once; each object is one S, so none overwrites
//     another's, and a loader takes the highest S.
//   - Cutting. After storing S the node deletes the bucket's older
//     snapshots and purges the stream below the older of S+1 and the first
//     message younger than SnapshotRetain (by the stream's timestamps, as
//     the node saw them applying): a node that lags by less than
//     SnapshotRetain still finds every message it has not applied. No
//     purge reaches past a stored snapshot: every node purges at most up
//     to its own, and the newest is never deleted.
//   - Loading. StartOrdered reads the newest snapshot whole (in memory)
//     and checks its encoding, then the stream's first sequence: if that
//     is past S+1 (a newer snapshot was written and the stream cut since
//     the listing) it reads the newest again, at most
//     snapshotLoadAttempts times. Then it applies the snapshot and follows
//     the stream from S+1.
//   - A gap. Stream sequences follow each other; a message past the one
//     after the last applied means the messages between were purged (the
//     node lagged by more than SnapshotRetain, or another node's retain is
//     shorter). The node does not apply across it: it logs an error, stops
//     applying, and reports CatchingUp from then on (the broker's Ready
//     says not ready); a restart loads the newest snapshot. When no
//     message comes (the stream was cut to nothing past the node), the
//     stream's state tells: a node that starts checks it once it loaded
//     its snapshot (past the attempts above), and a following node's lag
//     poll once the node waited a poll interval for a message (idleGap).
//
// A snapshot needs the broker's state (SetSOWState); without it the node
// loads records but writes none.

// Defaults of the snapshots (SOWConfig).
const (
	// DefaultSnapshotInterval: a starting node applies at most about a
	// minute of SOW publishes past the snapshot it loads.
	DefaultSnapshotInterval = time.Minute
	// DefaultSnapshotRetain: a node lagging by less keeps following the
	// stream after a purge.
	DefaultSnapshotRetain = 10 * time.Minute
	// snapshotBucketSuffix names the default bucket after the stream.
	snapshotBucketSuffix = "_SNAP"
	// snapshotPrefix starts a snapshot object's name, followed by its
	// sequence in 20 digits (names sort as sequences do).
	snapshotPrefix = "sow-"
	// snapshotStreamPrefix names an Object Store bucket's stream (nats.go's
	// rule), whose subjects list the bucket's objects.
	snapshotStreamPrefix = "OBJ_"
	// snapshotSeqMeta is the metadata key of a snapshot object's sequence.
	snapshotSeqMeta = "sequence"
	// snapshotVersion is the first byte of a snapshot's encoding.
	snapshotVersion = 1
	// snapshotLoadAttempts bounds StartOrdered's loads of the newest
	// snapshot when the stream was cut past it meanwhile.
	snapshotLoadAttempts = 5
	// retainSamples is how many stream (sequence, time) samples per
	// SnapshotRetain the node keeps, to find the first message younger
	// than SnapshotRetain: the purge keeps up to retain/retainSamples more.
	retainSamples = 16
)

// Frame kinds of the snapshot encoding.
const (
	snapEnd    = 0
	snapRecord = 1
	snapSeq    = 2
)

// ErrSOWGap reports that the node found messages of the SOW stream purged
// before it applied them (see "A gap" above): it stopped applying.
var ErrSOWGap = errors.New("natscluster: SOW stream messages purged before this node applied them")

// seqTime is a stream message's sequence and timestamp.
type seqTime struct {
	seq uint64
	at  time.Time
}

// snapshotData is an encoded snapshot at stream sequence seq.
type snapshotData struct {
	seq  uint64
	data []byte
}

// SetSOWState is broker.SOWSnapshotter's: the broker's state, for the
// snapshots. Call it before StartOrdered.
func (o *OrderedBackplane) SetSOWState(s broker.SOWState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.state = s
}

var _ broker.SOWSnapshotter = (*OrderedBackplane)(nil)

// snapshotName is the object name of the snapshot at seq.
func snapshotName(seq uint64) string { return fmt.Sprintf("%s%020d", snapshotPrefix, seq) }

// snapshotSeqOf reads the sequence of a snapshot's object name, ok false
// when the name is not a snapshot's.
func snapshotSeqOf(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, snapshotPrefix)
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, ok && err == nil && name == snapshotName(seq)
}

// snapInfo is a stored snapshot.
type snapInfo struct {
	name string
	seq  uint64
	mod  time.Time
	size uint64
}

// snapshots lists the bucket's snapshots, the newest (highest sequence)
// first. It asks with requests only (the bucket stream's subjects, then
// each object's info): nats.go's List watches the bucket through a
// consumer, which was seen to hang while a NATS cluster formed.
func (o *OrderedBackplane) snapshots(ctx context.Context) ([]snapInfo, error) {
	metaAll := "$O." + o.cfg.SnapshotBucket + ".M."
	info, err := o.snapStream.Info(ctx, jetstream.WithSubjectFilter(metaAll+">"))
	if err != nil {
		return nil, fmt.Errorf("natscluster: snapshots in %s: %w", o.cfg.SnapshotBucket, err)
	}
	var out []snapInfo
	for subj := range info.State.Subjects {
		raw, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(subj, metaAll))
		if err != nil {
			continue
		}
		if seq, ok := snapshotSeqOf(string(raw)); ok {
			out = append(out, snapInfo{name: string(raw), seq: seq})
		}
	}
	slices.SortFunc(out, func(a, b snapInfo) int { return cmp.Compare(b.seq, a.seq) })
	found := out[:0]
	for _, in := range out {
		oi, err := o.snaps.GetInfo(ctx, in.name)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			continue // deleted
		}
		if err != nil {
			return nil, fmt.Errorf("natscluster: snapshot %s of %s: %w", in.name, o.cfg.SnapshotBucket, err)
		}
		in.mod, in.size = oi.ModTime, oi.Size
		found = append(found, in)
	}
	return found, nil
}

// encodeSnapshot encodes the broker's state at the last applied sequence:
// little-endian varints,
//
//	version byte (snapshotVersion), uvarint sequence
//	frames, each a kind byte:
//	  snapRecord: 4 × (uvarint length, bytes): message type, topic, key,
//	      correlation id; uvarint ordinal; varint time (unix ns);
//	      uvarint expiration + 1 (0: none); uvarint length, body
//	  snapSeq: uvarint length, client name; uvarint sequence
//	  snapEnd: the end (a truncated snapshot has none)
//
// It runs on the apply goroutine between applies.
func (o *OrderedBackplane) encodeSnapshot() snapshotData {
	seq := o.applied.Load()
	b := binary.AppendUvarint([]byte{snapshotVersion}, seq)
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	o.state.Records(func(p *broker.RemotePublish) {
		b = append(b, snapRecord)
		str(p.MessageType)
		str(p.Topic)
		str(p.SOWKey)
		str(p.CorrelationID)
		b = binary.AppendUvarint(b, p.Ordinal)
		b = binary.AppendVarint(b, p.OrderTime.UnixNano())
		var exp uint64
		if p.HasExpiration {
			exp = p.Expiration + 1
		}
		b = binary.AppendUvarint(b, exp)
		b = binary.AppendUvarint(b, uint64(len(p.Body)))
		b = append(b, p.Body...)
	})
	o.state.Sequences(func(name string, s uint64) {
		b = append(b, snapSeq)
		str(name)
		b = binary.AppendUvarint(b, s)
	})
	return snapshotData{seq: seq, data: append(b, snapEnd)}
}

// decodeSnapshot reads a snapshot's encoding, handing each record and
// high-water mark to the visitors (either may be nil), and returns its
// sequence. p.Body shares data.
func decodeSnapshot(data []byte, record func(p *broker.RemotePublish), mark func(name string, seq uint64)) (uint64, error) {
	d := wire.Decoder{B: data, Bad: errBadEntry}
	if v := d.Byte(); d.Err == nil && v != snapshotVersion {
		return 0, fmt.Errorf("%w: snapshot version %d, want %d", errBadRemote, v, snapshotVersion)
	}
	seq := d.Uvarint()
	for d.Err == nil {
		switch kind := d.Byte(); kind {
		case snapEnd:
			if d.Err == nil && len(d.B) != 0 {
				return 0, fmt.Errorf("%w: %d bytes after the snapshot's end", errBadRemote, len(d.B))
			}
			return seq, d.Err
		case snapRecord:
			p := broker.RemotePublish{MessageType: d.String(), Topic: d.String(), SOWKey: d.String(), CorrelationID: d.String()}
			p.Ordinal = d.Uvarint()
			p.OrderTime = time.Unix(0, d.Varint())
			if exp := d.Uvarint(); exp != 0 {
				p.HasExpiration, p.Expiration = true, exp-1
			}
			n := d.Uvarint()
			if d.Err == nil && n > uint64(len(d.B)) {
				d.Fail("record body longer than the snapshot")
			}
			if d.Err == nil {
				p.Body, d.B = d.B[:n], d.B[n:]
				if record != nil {
					record(&p)
				}
			}
		case snapSeq:
			name, s := d.String(), d.Uvarint()
			if d.Err == nil && mark != nil {
				mark(name, s)
			}
		default:
			d.Fail(fmt.Sprintf("snapshot frame kind %d", kind))
		}
	}
	return 0, fmt.Errorf("%w: snapshot: %v", errBadRemote, d.Err)
}

// fetchSnapshot reads the newest snapshot and checks its encoding; data
// is nil when there is none. The listing is tried in short attempts until
// ctx ends (a NATS cluster that is forming leaves requests unanswered for
// a while), the read in attempts bounded by the request timeout plus a
// second per MiB.
func (o *OrderedBackplane) fetchSnapshot(ctx context.Context) (data []byte, seq uint64, err error) {
	infos, err := ensure(ctx, o.snapshots, nil, nil)
	if err != nil || len(infos) == 0 {
		return nil, 0, err
	}
	in := infos[0]
	for {
		actx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout+time.Duration(in.size>>20)*time.Second)
		data, err = o.snaps.GetBytes(actx, in.name)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		if errors.Is(err, jetstream.ErrObjectNotFound) { // a newer one replaced it
			return o.fetchSnapshot(ctx)
		}
		o.log.Debug("SOW snapshot not read; trying again", "name", in.name, "err", err)
		select { // a refusal that comes at once is not tried again at once
		case <-ctx.Done():
		case <-time.After(createPause):
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("natscluster: snapshot %s of %s: %w", in.name, o.cfg.SnapshotBucket, err)
	}
	if seq, err = decodeSnapshot(data, nil, nil); err != nil {
		return nil, 0, fmt.Errorf("natscluster: snapshot %s of %s: %w", in.name, o.cfg.SnapshotBucket, err)
	}
	return data, seq, nil
}

// loadNewest applies the newest snapshot, if any, records its sequence as
// applied, and returns the stream's state. When the stream's first
// message is past the one after the snapshot (it was cut past it after
// the read), it reads the newest again, at most snapshotLoadAttempts
// times, before it applies anything; past the attempts it applies the last
// read, and the follow goroutine reports the gap. Called by StartOrdered
// before the follow goroutine starts, so apply is not called concurrently.
func (o *OrderedBackplane) loadNewest(ctx context.Context, s jetstream.Stream, apply func(*broker.RemotePublish)) (*jetstream.StreamInfo, error) {
	for attempt := 1; ; attempt++ {
		data, seq, err := o.fetchSnapshot(ctx)
		if err != nil {
			return nil, err
		}
		info, err := ensure(ctx, func(ctx context.Context) (*jetstream.StreamInfo, error) { return s.Info(ctx) }, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("natscluster: SOW stream %s: %w", o.cfg.Stream, err)
		}
		// Cut past the snapshot read (also to nothing: an empty stream
		// whose first sequence is past it), so a newer one was stored.
		if info.State.FirstSeq > seq+1 && attempt < snapshotLoadAttempts {
			o.log.Info("SOW stream cut past the newest snapshot read; reading again", "sequence", seq, "first", info.State.FirstSeq)
			continue
		}
		if data != nil {
			o.applySnapshot(data, apply)
		}
		return info, nil
	}
}

// applySnapshot applies a snapshot's records and restores its marks
// (data was checked).
func (o *OrderedBackplane) applySnapshot(data []byte, apply func(*broker.RemotePublish)) {
	var records int64
	var restore func(string, uint64)
	if o.state != nil {
		restore = o.state.RestoreSequence
	}
	seq, _ := decodeSnapshot(data, func(p *broker.RemotePublish) {
		records++
		apply(p)
	}, restore)
	o.applied.Store(seq)
	o.snapLoaded.Store(seq)
	o.snapRecords.Store(records)
	o.log.Info("SOW snapshot loaded", "bucket", o.cfg.SnapshotBucket, "sequence", seq, "records", records, "bytes", len(data))
}

// sample records an applied message's sequence and time for the purge's
// retain bound, about retainSamples per SnapshotRetain, keeping one sample
// older than the bound at most. Called on the apply goroutine.
func (o *OrderedBackplane) sample(seq uint64, at time.Time) {
	if o.cfg.SnapshotInterval < 0 {
		return
	}
	o.samplesMu.Lock()
	defer o.samplesMu.Unlock()
	o.newest = seqTime{seq: seq, at: at}
	if n := len(o.samples); n > 0 && at.Sub(o.samples[n-1].at) < o.cfg.SnapshotRetain/retainSamples {
		return
	}
	o.samples = append(o.samples, seqTime{seq: seq, at: at})
	horizon := time.Now().Add(-o.cfg.SnapshotRetain)
	for len(o.samples) > 1 && o.samples[1].at.Before(horizon) {
		o.samples = o.samples[1:]
	}
}

// retainedFrom is the first sequence the purge must keep for
// SnapshotRetain: the one after the newest sample older than it, 0 when
// none is (nothing may be purged).
func (o *OrderedBackplane) retainedFrom() uint64 {
	horizon := time.Now().Add(-o.cfg.SnapshotRetain)
	o.samplesMu.Lock()
	defer o.samplesMu.Unlock()
	if o.newest.at.Before(horizon) {
		return o.newest.seq + 1
	}
	var keep uint64
	for _, s := range o.samples {
		if !s.at.Before(horizon) {
			break
		}
		keep = s.seq + 1
	}
	return keep
}

// snapshotLoop writes snapshots every SnapshotInterval until ctx ends
// (Close); it closes snapDone then.
func (o *OrderedBackplane) snapshotLoop(ctx context.Context, s jetstream.Stream) {
	defer close(o.snapDone)
	every(ctx, o.cfg.SnapshotInterval, func() {
		if err := o.snapshotOnce(ctx, s); err != nil && ctx.Err() == nil {
			o.log.Warn("SOW snapshot not written", "bucket", o.cfg.SnapshotBucket, "err", err)
		}
	})
}

// snapshotOnce writes a snapshot when one is due (see "Writing"), then
// cuts the stream.
func (o *OrderedBackplane) snapshotOnce(ctx context.Context, s jetstream.Stream) error {
	if o.gapped.Load() {
		return nil // what it would write is older than what others have
	}
	applied := o.applied.Load()
	if applied <= o.snapWritten {
		return o.cut(ctx, s, o.snapWritten)
	}
	rctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
	infos, err := o.snapshots(rctx)
	cancel()
	if err != nil {
		return err
	}
	if len(infos) > 0 {
		newest := infos[0].seq
		if newest >= applied || time.Since(infos[0].mod) < o.cfg.SnapshotInterval/2 {
			// Not written; the stream is cut below the newest as far as
			// SnapshotRetain lets it now.
			return o.cut(ctx, s, newest)
		}
	}
	// The apply goroutine encodes it between two applies.
	select {
	case o.snapWake <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	var snap snapshotData
	select {
	case snap = <-o.snapOut:
	case <-ctx.Done():
		return ctx.Err()
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout+time.Duration(len(snap.data)>>20)*time.Second)
	defer cancel()
	name := snapshotName(snap.seq)
	meta := jetstream.ObjectMeta{Name: name, Metadata: map[string]string{snapshotSeqMeta: strconv.FormatUint(snap.seq, 10)}}
	if _, err := o.snaps.Put(wctx, meta, bytes.NewReader(snap.data)); err != nil {
		return fmt.Errorf("natscluster: snapshot %s of %s: %w", name, o.cfg.SnapshotBucket, err)
	}
	o.snapWritten = snap.seq
	o.snapsWritten.Add(1)
	o.log.Debug("SOW snapshot written", "bucket", o.cfg.SnapshotBucket, "sequence", snap.seq, "bytes", len(snap.data), "took", time.Since(start))
	// The older snapshots go: a loader takes the newest.
	if infos, err = o.snapshots(wctx); err != nil {
		return err
	}
	for _, in := range infos {
		if in.seq >= snap.seq {
			continue
		}
		if err := o.snaps.Delete(wctx, in.name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			o.log.Debug("older SOW snapshot not deleted", "name", in.name, "err", err)
			continue
		}
		// The delete leaves a marker under the object's name; it goes too,
		// or the bucket would keep one per snapshot ever written.
		meta := "$O." + o.cfg.SnapshotBucket + ".M." + base64.URLEncoding.EncodeToString([]byte(in.name))
		if err := o.snapStream.Purge(wctx, jetstream.WithPurgeSubject(meta)); err != nil {
			o.log.Debug("older SOW snapshot's delete marker not purged", "name", in.name, "err", err)
		}
	}
	return o.cut(ctx, s, snap.seq)
}

// cut purges the stream below the older of stored+1 (stored: a snapshot
// in the bucket) and the first message younger than SnapshotRetain, when
// that is past what this node purged already.
func (o *OrderedBackplane) cut(ctx context.Context, s jetstream.Stream, stored uint64) error {
	keep := min(stored+1, o.retainedFrom())
	if stored == 0 || keep <= o.purgedBelow.Load() {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
	defer cancel()
	if err := s.Purge(pctx, jetstream.WithPurgeSequence(keep)); err != nil {
		return fmt.Errorf("natscluster: SOW stream %s purge below %d: %w", o.cfg.Stream, keep, err)
	}
	o.purgedBelow.Store(keep)
	o.log.Debug("SOW stream purged", "stream", o.cfg.Stream, "below", keep)
	return nil
}

// answerSnapshot encodes a snapshot for the snapshot goroutine; on the
// apply goroutine between applies.
func (o *OrderedBackplane) answerSnapshot() {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		return
	}
	o.snapOut <- o.encodeSnapshot() // never blocks: one request at a time
}

// reportGap records a gap before seq (the last applied being applied):
// the node stops applying (see "A gap"). It logs the first.
func (o *OrderedBackplane) reportGap(applied, seq uint64) error {
	err := fmt.Errorf("%w: applied up to %d, the stream's next message is %d", ErrSOWGap, applied, seq)
	o.catchingUp.Store(true)
	if !o.gapped.Swap(true) {
		o.log.Error("SOW stream cut past what this node applied; it stops applying and reports catching up until restarted", "err", err)
	}
	return err
}

// checkGap reports a gap when the stream's state st, asked for by
// StartOrdered before it follows the stream, shows messages purged that
// the node has not applied: its first message is past the one after the
// last applied, and it has had messages past that one. (The follow
// goroutine finds a gap when its next message comes; this finds it when
// none comes, as when the stream was cut to nothing. While following, a
// message the consumer delivered before the cut may still be applied, so
// the stream's state alone tells no gap then.)
func (o *OrderedBackplane) checkGap(st jetstream.StreamState) {
	if applied := o.applied.Load(); st.FirstSeq > applied+1 && st.LastSeq > applied {
		o.reportGap(applied, st.FirstSeq)
	}
}

// idleGap reports a gap when the stream's state st (the lag poll's) shows
// messages purged that this node has not applied, while the follow
// goroutine has waited for a message, applying nothing, for at least a
// poll interval: a consumer whose next messages were purged delivers
// nothing until the stream gets more, and an idle cluster may not get
// any. A message the consumer delivered before the cut is applied within
// that interval (nats.go hands it over at once, and the follow goroutine
// is waiting), so what the node still has in its buffers is not taken for
// a gap.
func (o *OrderedBackplane) idleGap(st jetstream.StreamState) {
	applied := o.applied.Load()
	idle := o.idleSince.Load()
	if idle == 0 || time.Since(time.Unix(0, idle)) < o.cfg.LagPollInterval || o.applied.Load() != applied {
		return
	}
	if st.FirstSeq > applied+1 && st.LastSeq > applied {
		o.reportGap(applied, st.FirstSeq)
	}
}

// snapshotState are the OrderedBackplane's snapshot fields.
type snapshotState struct {
	// state is the broker's (SetSOWState); nil: no snapshot is written.
	state      broker.SOWState
	snaps      jetstream.ObjectStore // the bucket
	snapStream jetstream.Stream      // the bucket's stream
	// snapWake asks the apply goroutine for a snapshot, which it sends on
	// snapOut. The snapshot goroutine runs until snapStop (Close), and
	// closes snapDone then; snapWritten is the last snapshot it wrote.
	snapWake    chan struct{}
	snapOut     chan snapshotData
	snapStop    context.CancelFunc
	snapDone    chan struct{}
	snapWritten uint64
	purgedBelow atomic.Uint64 // the last purge's bound
	// samples are applied messages' (sequence, time), for the purge's
	// retain bound.
	samplesMu sync.Mutex
	samples   []seqTime
	newest    seqTime
	// gapped is set once the node found a gap and stopped applying.
	// idleSince is when the follow goroutine began waiting for a message
	// (unix ns), 0 while it handles one.
	gapped    atomic.Bool
	idleSince atomic.Int64
	// snapLoaded is the sequence of the snapshot StartOrdered loaded (0:
	// none), snapRecords its records; snapsWritten counts the snapshots
	// this node wrote; streamApplied the stream messages it applied.
	snapLoaded, snapsWritten, streamApplied atomic.Uint64
	snapRecords                             atomic.Int64
}
