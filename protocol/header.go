package protocol

// Command names as they appear in the "c" header key (spec §7, §8).
const (
	CmdLogon           = "logon"
	CmdHeartbeat       = "heartbeat"
	CmdPublish         = "publish"
	CmdP               = "p" // short form of publish sent by TCP clients and used on deliveries
	CmdDeltaPublish    = "delta_publish"
	CmdSubscribe       = "subscribe"
	CmdDeltaSubscribe  = "delta_subscribe"
	CmdUnsubscribe     = "unsubscribe"
	CmdSOW             = "sow"
	CmdSOWAndSubscribe = "sow_and_subscribe"
	CmdSOWAndDeltaSub  = "sow_and_delta_subscribe"
	CmdSOWDelete       = "sow_delete"
	CmdFlush           = "flush"
	CmdStartTimer      = "start_timer"
	CmdStopTimer       = "stop_timer"
	CmdAck             = "ack"
	CmdOOF             = "oof"
	CmdGroupBegin      = "group_begin"
	CmdGroupEnd        = "group_end"
)

// Ack types, used both in a command's requested list ("a":"processed,completed")
// and as the single type of an ack message (spec §6, §7).
const (
	AckReceived  = "received"
	AckParsed    = "parsed"
	AckProcessed = "processed"
	AckPersisted = "persisted"
	AckCompleted = "completed"
	AckStats     = "stats"
)

// Ack status values (spec §9.1). Clients compare them exactly, in lower case.
const (
	StatusSuccess = "success"
	StatusFailure = "failure"
	StatusRetry   = "retry"
)

// Field identifies one numeric header key. A Header records which numeric keys
// were present in Present, because zero is a meaningful value for them (for
// example "s":0 on a logon ack).
type Field uint32

// Numeric header keys (spec §6).
const (
	FieldBatchSize       Field = 1 << iota // bs
	FieldTopN                              // top_n
	FieldExpiration                        // e
	FieldSequence                          // s
	FieldLength                            // l
	FieldRecordsReturned                   // records_returned
	FieldRecordsInserted                   // records_inserted
	FieldRecordsUpdated                    // records_updated
	FieldRecordsDeleted                    // records_deleted
	FieldTopicMatches                      // topic_matches
	FieldMatches                           // matches
	FieldGroupSeq                          // gseq
	FieldSkipN                             // skip_n
	FieldMaxMessages                       // max_msgs or maximum_messages
	FieldTimeoutInterval                   // timeout_interval
	FieldGracePeriod                       // grace_period
	// FieldSendEmpty records only that the boolean send_empty was present
	// (its value is SendEmpty): the legacy switch matters when false. It
	// carries no number and the encoder ignores it.
	FieldSendEmpty
)

// Header is the decoded JSON header of one AMPS message (spec §6). String
// fields are empty when the key is absent or empty ("filter":"" means no
// filter, spec §5). Numeric fields are meaningful only when their Field bit is
// set in Present. Unknown keys are ignored by the decoder.
type Header struct {
	Command       string // c
	CommandID     string // cid
	AckType       string // a
	Topic         string // t
	SubID         string // sub_id
	SubIDs        string // sids
	QueryID       string // query_id
	Filter        string // filter, or its abbreviation f
	Options       string // o (JS client) or opts (TCP clients)
	Bookmark      string // bm
	OrderBy       string // orderby
	SOWKeys       string // sow_keys
	SOWKey        string // k
	CorrelationID string // x
	Timestamp     string // ts
	LeasePeriod   string // lp
	Status        string // status
	Reason        string // reason
	ClientName    string // client_name
	UserID        string // user_id
	Password      string // pw
	Version       string // version, or its abbreviation v
	MessageType   string // mt

	BatchSize       uint64 // bs
	TopN            uint64 // top_n
	Expiration      uint64 // e
	Sequence        uint64 // s
	Length          uint64 // l
	RecordsReturned uint64 // records_returned
	RecordsInserted uint64 // records_inserted
	RecordsUpdated  uint64 // records_updated
	RecordsDeleted  uint64 // records_deleted
	TopicMatches    uint64 // topic_matches
	Matches         uint64 // matches
	GroupSeq        uint64 // gseq
	SkipN           uint64 // skip_n
	MaxMessages     uint64 // max_msgs / maximum_messages
	TimeoutInterval uint64 // timeout_interval
	GracePeriod     uint64 // grace_period

	// Legacy boolean switches (spec §6); accepted as true/false or "true"/"false".
	SendEmpty, SendKeys, SendOOF, DataOnly, SendSubscriptionIDs bool

	// Present records which numeric keys were present (decoder) or are to be
	// written (encoder).
	Present Field
}

// Has reports whether the numeric key f is present.
func (h *Header) Has(f Field) bool { return h.Present&f != 0 }

// Set stores v in the numeric field f and marks it present.
// It panics if f is not exactly one known Field.
func (h *Header) Set(f Field, v uint64) {
	*h.num(f) = v
	h.Present |= f
}

func (h *Header) num(f Field) *uint64 {
	switch f {
	case FieldBatchSize:
		return &h.BatchSize
	case FieldTopN:
		return &h.TopN
	case FieldExpiration:
		return &h.Expiration
	case FieldSequence:
		return &h.Sequence
	case FieldLength:
		return &h.Length
	case FieldRecordsReturned:
		return &h.RecordsReturned
	case FieldRecordsInserted:
		return &h.RecordsInserted
	case FieldRecordsUpdated:
		return &h.RecordsUpdated
	case FieldRecordsDeleted:
		return &h.RecordsDeleted
	case FieldTopicMatches:
		return &h.TopicMatches
	case FieldMatches:
		return &h.Matches
	case FieldGroupSeq:
		return &h.GroupSeq
	case FieldSkipN:
		return &h.SkipN
	case FieldMaxMessages:
		return &h.MaxMessages
	case FieldTimeoutInterval:
		return &h.TimeoutInterval
	case FieldGracePeriod:
		return &h.GracePeriod
	}
	panic("protocol: unknown header field")
}
