package config

// level is how far this package supports an element.
type level uint8

const (
	lvUse        level = iota // supported: decoded and applied
	lvQuiet                   // informational: decoded or skipped silently
	lvAccept                  // validated but ignored, with one warning
	lvReject                  // unsupported: error, a warning in lenient mode
	lvRejectHard              // unsupported, and skipping it would mislead clients: error in both modes
)

// elem describes what may appear at one place in an AMPSConfig document.
type elem struct {
	lv     level
	repeat bool             // may appear more than once
	kids   map[string]*elem // child elements; nil for text elements
	opaque bool             // any children (module Options, ignored blocks)
	code   Code             // code of the accept/reject diagnostic; default CodeAccepted / CodeUnsupported
	why    string           // the diagnostic's reason
}

func leaf() *elem                        { return &elem{} }
func leaves() *elem                      { return &elem{repeat: true} }
func block(k map[string]*elem) *elem     { return &elem{kids: k} }
func blocks(k map[string]*elem) *elem    { return &elem{kids: k, repeat: true} }
func opaqueBlock() *elem                 { return &elem{opaque: true} }
func quiet() *elem                       { return &elem{lv: lvQuiet} }
func accept(why string) *elem            { return &elem{lv: lvAccept, opaque: true, why: why} }
func reject(why string) *elem            { return &elem{lv: lvReject, opaque: true, why: why} }
func rejectHard(why string) *elem        { return &elem{lv: lvRejectHard, opaque: true, why: why} }
func warnOnly(code Code, w string) *elem { return &elem{lv: lvAccept, code: code, why: w} }

// moduleRef is an Authentication, Entitlement or filter element: a Module
// name plus Options handed to the module.
func moduleRef() *elem {
	return block(map[string]*elem{"Module": leaf(), "Options": opaqueBlock()})
}

// slow-client elements shared by the root and Transport.
const diskWhy = "ignored: clients over MessageMemoryLimit are disconnected, not offlined"

var transportSchema = blocks(map[string]*elem{
	"Name":                  leaf(),
	"Type":                  leaf(),
	"InetAddr":              leaf(),
	"Protocol":              leaf(),
	"MessageType":           leaf(),
	"InitialState":          leaf(),
	"Authentication":        moduleRef(),
	"Entitlement":           moduleRef(),
	"MessageMemoryLimit":    leaf(),
	"MessageDiskLimit":      warnOnly(CodeSlowClient, diskWhy),
	"MessageDiskPath":       warnOnly(CodeSlowClient, diskWhy),
	"ClientMessageAgeLimit": leaf(),
	"ClientMaxCapacity":     leaf(),
	"TransportFilter":       {lv: lvReject, repeat: true, opaque: true, why: "transport filters are not supported by this broker"},
	"Certificate":           leaf(),
	"PrivateKey":            leaf(),
	"Ciphers":               leaf(),
	"SecureSocketProtocols": leaf(),
	"VerifyClient":          leaf(),
	"CAFile":                leaf(),
	"CAPath":                leaf(),
	"FileName":              leaf(),
	"FileMask":              leaf(),
	"PerMessageDeflate":     leaf(),
	"HTTPHeader":            leaves(),
})

var topicKids = map[string]*elem{
	"Name":                 leaf(),
	"Topic":                leaf(), // pre-5.0 name of Name, still accepted
	"MessageType":          leaf(),
	"Key":                  leaves(),
	"KeyDomain":            leaf(),
	"KeyGenerator":         reject("KeyGenerator is not supported: custom key modules cannot be loaded"),
	"FileName":             leaf(),
	"Durability":           leaf(),
	"Duration":             leaf(), // pre-5.0 name of Durability (storage, not a lifetime)
	"RecoveryPoint":        leaf(),
	"Expiration":           leaf(),
	"History":              rejectHard("History is not supported: point-in-time queries would silently return current data"),
	"HashIndex":            {lv: lvAccept, repeat: true, opaque: true, why: "HashIndex accepted but ignored (an optional optimisation)"},
	"Index":                {lv: lvAccept, repeat: true, opaque: true, why: "Index accepted but ignored (indexes are built on demand)"},
	"ExpectedKeyCountHint": leaf(),
	"SlabSize":             leaf(),
	"InitialSlabCount":     leaf(),
	"Preprocessing":        rejectHard("Preprocessing is not supported: messages would be stored unmodified"),
	"Enrichment":           rejectHard("Enrichment is not supported: messages would be stored unmodified"),
	"Pattern":              leaf(),
}

// sowKids: Topic is supported; every other container is an error even in
// lenient mode, as a client querying a view or queue that silently vanished
// would get failures it cannot explain.
var sowKids = map[string]*elem{
	"Topic":             blocks(topicKids),
	"TopicDefinition":   blocks(topicKids), // pre-5.0 name of Topic
	"View":              {lv: lvRejectHard, repeat: true, opaque: true, why: "View is not supported: clients querying it would get unexplained failures"},
	"Queue":             {lv: lvRejectHard, repeat: true, opaque: true, why: "Queue is not supported"},
	"LocalQueue":        {lv: lvRejectHard, repeat: true, opaque: true, why: "LocalQueue is not supported"},
	"GroupLocalQueue":   {lv: lvRejectHard, repeat: true, opaque: true, why: "GroupLocalQueue is not supported"},
	"ConflatedTopic":    {lv: lvRejectHard, repeat: true, opaque: true, why: "ConflatedTopic is not supported"},
	"ReplicaDefinition": {lv: lvRejectHard, repeat: true, opaque: true, why: "ReplicaDefinition (ConflatedTopic) is not supported"},
}

// txlogReplication is the diagnostic for replication settings written
// inside TransactionLog: AMPS configures replication elsewhere.
func txlogReplication() *elem {
	return &elem{lv: lvReject, repeat: true, opaque: true, code: CodeTransportReplication,
		why: "replication is configured in AMPSConfig/Replication and is not supported"}
}

// txlogKids are the children of TransactionLog (amps-config-txlog §6A.2).
// BatchSize and ClientSpecificOptions, seen in older material, are not
// AMPS 5.3.5 elements and stay unknown.
var txlogKids = map[string]*elem{
	"JournalDirectory":                  leaf(),
	"JournalArchiveDirectory":           warnOnly(CodeAccepted, "JournalArchiveDirectory accepted but not used: journal files are never archived, and the directory is not read at start"),
	"JournalSize":                       leaf(),
	"MinJournalSize":                    leaf(), // synonym of JournalSize
	"PreallocatedJournalFiles":          warnOnly(CodeAccepted, "PreallocatedJournalFiles accepted but has no effect: journal files are created when they are needed"),
	"FlushInterval":                     leaf(),
	"O_DIRECT":                          warnOnly(CodeAccepted, "O_DIRECT accepted but has no effect: every journal write is synced (fdatasync) before it counts as persisted"),
	"InactiveClientAckExpiration":       leaf(),
	"CompressedJournalCacheMemoryLimit": warnOnly(CodeAccepted, "CompressedJournalCacheMemoryLimit accepted but has no effect: journals are never compressed"),
	"Topic":                             blocks(map[string]*elem{"Name": leaf(), "MessageType": leaf()}),
	"Replication":                       txlogReplication(),
	"Destination":                       txlogReplication(),
	"SyncType":                          txlogReplication(),
	"AckConflationInterval":             txlogReplication(),
}

// rootSchema is the vocabulary of an AMPSConfig document: the elements
// allowed under the root and, recursively, below them.
var rootSchema = block(map[string]*elem{
	"Name":                          leaf(),
	"Group":                         accept("Group accepted but ignored: there is no replication"),
	"ProcessName":                   quiet(),
	"Description":                   quiet(),
	"Environment":                   quiet(),
	"SuggestedMinimumVersion":       leaf(),
	"RequiredMinimumVersion":        leaf(),
	"ConfigIncludeCommentDefault":   leaf(),
	"ConfigCycleDetectionThreshold": leaf(),
	"ConfigValidation":              leaf(),
	"RegexTopicSupport":             leaf(),
	"SOWStatisticsInterval":         accept("SOWStatisticsInterval accepted but /AMPS/SOWStats is not published"),
	"SOWStatsInterval":              accept("SOWStatsInterval accepted but /AMPS/SOWStats is not published"),
	"MessageMemoryLimit":            leaf(),
	"MessageDiskLimit":              warnOnly(CodeSlowClient, diskWhy),
	"MessageDiskPath":               warnOnly(CodeSlowClient, diskWhy),
	"ClientMessageAgeLimit":         leaf(),
	"ClientMaxCapacity":             leaf(),
	"MiniDumpDirectory":             accept("MiniDumpDirectory accepted but ignored: no crash dumps are written"),
	"MiniDumpFileMask":              accept("MiniDumpFileMask accepted but ignored: no crash dumps are written"),
	"Tuning":                        accept("Tuning accepted but ignored"),
	"Externals":                     accept("Externals accepted but ignored: TLS uses Go's crypto/tls"),
	"UserDefinedFunctions":          reject("UserDefinedFunctions is not supported: C modules cannot be loaded"),
	"Modules": block(map[string]*elem{
		"Module": blocks(map[string]*elem{"Name": leaf(), "Library": leaf(), "Options": opaqueBlock()}),
	}),
	"MessageTypes": block(map[string]*elem{
		"MessageType": blocks(map[string]*elem{
			"Name":                         leaf(),
			"Module":                       leaf(),
			"AMPSVersionCompliance":        accept("AMPSVersionCompliance accepted but ignored"),
			"Options":                      reject("message type Options are not supported: custom modules cannot be loaded"),
			"FieldSeparator":               reject("FieldSeparator is not supported: fix and nvfix fields are read with the standard separators"),
			"HeaderSeparator":              reject("HeaderSeparator is not supported: fix and nvfix fields are read with the standard separators"),
			"MessageSeparator":             reject("MessageSeparator is not supported: fix and nvfix fields are read with the standard separators"),
			"EarlyTerminationOptimization": leaf(),
		}),
	}),
	"Protocols": reject("customised Protocols are not supported yet; use Protocol amps or websocket on the transport"),
	"Transports": block(map[string]*elem{
		"Transport": transportSchema,
	}),
	// Admin: the server's address, sampling interval, HTTPS files, its
	// dashboard switch, its own Authentication and Entitlement modules,
	// AnonymousPaths, Header and AccessControlAllowOrigin are served
	// (Config.Admin); the rest is validated where it can be and
	// ignored with a warning naming the element.
	"Admin": block(map[string]*elem{
		"InetAddr": leaf(), "Interval": leaf(), "Certificate": leaf(), "PrivateKey": leaf(), "Galvanometer": leaf(),
		"FileName":                 warnOnly(CodeAccepted, "Admin FileName accepted but ignored: statistics are kept in memory"),
		"WWWAuthenticate":          warnOnly(CodeAccepted, "Admin WWWAuthenticate accepted but ignored: the admin server challenges with Basic"),
		"Authentication":           moduleRef(),
		"Entitlement":              moduleRef(),
		"AnonymousPaths":           leaf(),
		"Header":                   leaves(),
		"ExternalInetAddr":         warnOnly(CodeAccepted, "Admin ExternalInetAddr accepted but ignored"),
		"AccessControlAllowOrigin": leaf(),
		"SessionOptions":           warnOnly(CodeAccepted, "Admin SessionOptions accepted but ignored: there are no login sessions"),
		"SQLTransport":             warnOnly(CodeAccepted, "Admin SQLTransport accepted but ignored: there is no query page"),
		"SQLTransportInetAddr":     warnOnly(CodeAccepted, "Admin SQLTransportInetAddr accepted but ignored: there is no query page"),
		"Ciphers":                  warnOnly(CodeAccepted, "Admin Ciphers accepted but ignored: HTTPS uses Go's default cipher suites"),
	}),
	"Logging": block(map[string]*elem{
		"Target": blocks(map[string]*elem{
			"Protocol": leaf(), "Level": leaf(), "Levels": leaf(),
			"IncludeErrors":     accept("IncludeErrors accepted but ignored: log records carry no AMPS message ids"),
			"ExcludeErrors":     accept("ExcludeErrors accepted but ignored: log records carry no AMPS message ids"),
			"FileName":          leaf(),
			"RotationThreshold": leaf(),
			"Ident":             accept("Ident accepted but ignored"),
			"Options":           accept("Options accepted but ignored"),
			"Facility":          accept("Facility accepted but ignored"),
		}),
	}),
	"Authentication": moduleRef(),
	"Entitlement":    moduleRef(),
	"SOW":            block(sowKids),
	"TopicMetaData":  block(sowKids), // pre-5.0 name of SOW
	"TransactionLog": block(txlogKids),
	"NATSCluster":    block(natsClusterKids), // ours, see NATSCluster
	"Replication":    {lv: lvReject, opaque: true, code: CodeTransportReplication, why: "replication is not supported by this broker"},
	"Actions":        reject("Actions are not supported: scheduled and event-driven actions would never run"),
})
