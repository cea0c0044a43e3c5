package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// sowDoc wraps SOW topic definitions, one per line starting on line 4, in
// a document.
func sowDoc(topics ...string) string {
	return doc("<SOW>\n" + strings.Join(topics, "\n") + "\n</SOW>")
}

// wantOnlyError checks that strict Parse of xml fails with exactly one
// error, of code with the full message msg (path, text, line).
func wantOnlyError(t *testing.T, xml string, code Code, msg string) {
	t.Helper()
	_, e := parseString(t, xml, nil)
	if e == nil {
		t.Fatalf("Parse succeeded; want %s", code)
	}
	if len(e.Errors) != 1 {
		t.Errorf("%d errors, want exactly one:\n%v", len(e.Errors), e)
	}
	for _, d := range e.Errors {
		if d.Code == code && d.Error() == msg {
			return
		}
	}
	t.Errorf("no %s error with message\n\t%s\ngot:\n%s", code, msg, e.Error())
}

// TestBrokerOptionsSOW checks that every SOW topic reaches the broker, in
// configuration order, with its Name or Pattern, MessageType, Keys and
// KeyDomain.
func TestBrokerOptionsSOW(t *testing.T) {
	xml := sowDoc(
		`<Topic><Name>orders</Name><MessageType>json</MessageType><Key>/region</Key><Key>/id</Key><KeyDomain>ord</KeyDomain><Durability>transient</Durability></Topic>`,
		`<Topic><Name>per-user</Name><Pattern>user/[a-z]+</Pattern><MessageType>json</MessageType><Key>/id</Key><Durability>transient</Durability><Expiration>1h</Expiration></Topic>`,
		`<Topic><Name>inst</Name><Pattern>inst/.*</Pattern><MessageType>json</MessageType><Key>/sym</Key><KeyDomain>shared</KeyDomain><Durability>transient</Durability></Topic>`,
		`<Topic><Name>ticks</Name><MessageType>binary</MessageType><Durability>transient</Durability></Topic>`,
		`<Topic><Topic>legacy</Topic><MessageType>nvfix</MessageType><Key>/55</Key><Durability>transient</Durability></Topic>`,
	)
	cfg, e := parseString(t, xml, nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	want := []broker.SOWTopic{
		{Name: "orders", MessageType: "json", Keys: []string{"/region", "/id"}, KeyDomain: "ord"},
		// A Pattern topic keeps its physical Name, which seeds the keys
		// when KeyDomain is absent.
		{Name: "per-user", Pattern: "user/[a-z]+", MessageType: "json", Keys: []string{"/id"}, Expiration: time.Hour, ExpirationEnabled: true},
		{Name: "inst", Pattern: "inst/.*", MessageType: "json", Keys: []string{"/sym"}, KeyDomain: "shared"},
		{Name: "ticks", MessageType: "binary"},
		{Name: "legacy", MessageType: "nvfix", Keys: []string{"/55"}},
	}
	o := cfg.BrokerOptions()
	if !reflect.DeepEqual(o.SOWTopics, want) {
		t.Errorf("SOWTopics:\n%+v\nwant:\n%+v", o.SOWTopics, want)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("broker refuses the mapped options: %v", err)
	}
	// The mapped Keys are a copy: changing them does not change the
	// configuration.
	o.SOWTopics[0].Keys[0] = "/changed"
	if cfg.SOW[0].Keys[0] != "/region" {
		t.Errorf("BrokerOptions shares Keys with the Config: %v", cfg.SOW[0].Keys)
	}
	// Expiration stays in the configuration for now.
	if cfg.SOW[1].Expiration.Hours() != 1 || !cfg.SOW[1].ExpirationEnabled {
		t.Errorf("Expiration of the pattern topic: %+v", cfg.SOW[1])
	}
	if got := (&Config{Name: "x"}).BrokerOptions().SOWTopics; got != nil {
		t.Errorf("no SOW topics mapped to %+v", got)
	}
}

// TestLenientPersistentSOWMaps checks that a persistent topic, which
// lenient mode runs in memory, reaches the broker.
func TestLenientPersistentSOWMaps(t *testing.T) {
	xml := sowDoc(`<Topic><Name>p</Name><MessageType>json</MessageType><Key>/id</Key><FileName>./p.sow</FileName></Topic>`)
	if _, e := parseString(t, xml, nil); e == nil || !e.Has(CodeSOWStorage) {
		t.Fatalf("strict Parse of a persistent topic: %v, want %s", e, CodeSOWStorage)
	}
	cfg, e := parseString(t, xml, &ParseOptions{Lenient: true})
	if e != nil {
		t.Fatalf("lenient Parse: %v", e)
	}
	want := []broker.SOWTopic{{Name: "p", MessageType: "json", Keys: []string{"/id"}}}
	if got := cfg.BrokerOptions().SOWTopics; !reflect.DeepEqual(got, want) {
		t.Errorf("SOWTopics = %+v, want %+v", got, want)
	}
}

// TestSOWErrors checks the diagnostics of SOW definitions, Pattern ones and
// those the broker refuses: code, path, message and line.
func TestSOWErrors(t *testing.T) {
	const tr = "<Durability>transient</Durability>"
	tests := []struct {
		name string
		xml  string
		code Code
		msg  string
	}{
		{"pattern without name", sowDoc(`<Topic><Pattern>user/.*</Pattern><MessageType>json</MessageType>` + tr + `</Topic>`), CodeSOWTopic,
			`SOW/Topic[1]/Name: SOW Topic with Pattern "user/.*" needs a Name (the physical topic holding the matching topics) (line 4)`},
		{"pattern syntax", sowDoc(`<Topic><Name>u</Name><Pattern>user/(</Pattern><MessageType>json</MessageType>` + tr + `</Topic>`), CodeSOWTopic,
			"SOW/Topic[1]/Pattern: SOW Topic \"u\": Pattern \"user/(\" is not a valid regular expression: error parsing regexp: missing closing ): `user/(` (line 4)"},
		{"pattern empty", sowDoc(`<Topic><Name>u</Name><Pattern> </Pattern><MessageType>json</MessageType>` + tr + `</Topic>`), CodeSOWTopic,
			`SOW/Topic[1]/Pattern: SOW Topic "u": Pattern is empty (line 4)`},
		{"pattern twice", sowDoc(
			`<Topic><Name>a</Name><Pattern>user/.*</Pattern><MessageType>json</MessageType>`+tr+`</Topic>`,
			`<Topic><Name>b</Name><Pattern>user/.*</Pattern><MessageType>json</MessageType>`+tr+`</Topic>`), CodeSOWTopic,
			`SOW/Topic[2]/Pattern: SOW Topic "b": Pattern "user/.*" (json) is already defined by Topic[1] (line 5)`},
		{"pattern name twice", sowDoc(
			`<Topic><Name>a</Name><MessageType>json</MessageType>`+tr+`</Topic>`,
			`<Topic><Name>a</Name><Pattern>user/.*</Pattern><MessageType>json</MessageType>`+tr+`</Topic>`), CodeSOWTopic,
			`SOW/Topic[2]: SOW Topic "a" (json) defined twice (first as Topic[1]) (line 5)`},
		{"declared json type with keys", doc("<MessageTypes><MessageType><Name>myjson</Name><Module>json</Module></MessageType></MessageTypes>\n<SOW>\n<Topic><Name>t</Name><MessageType>myjson</MessageType><Key>/id</Key>" + tr + "</Topic>\n</SOW>"), CodeSOWType,
			`SOW/Topic[1]: SOW Topic "t" (myjson): keys cannot be computed for this message type (json, fix and nvfix can be read); without Key, publishers give each record's key (line 5)`},
		// Refused by the broker's validation, reported at the topic.
		{"key not a field", sowDoc(`<Topic><Name>p</Name><MessageType>json</MessageType><Key>/a b</Key>` + tr + `</Topic>`), CodeSOWTopic,
			`SOW/Topic[1]: SOW topic "p": Key "/a b" is not a field such as /id (line 4)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantOnlyError(t, tc.xml, tc.code, tc.msg)
		})
	}
}

// TestSOWAccepted checks definitions that are valid now: computed keys on
// fix and nvfix, explicit keys on any type, and Pattern topics.
func TestSOWAccepted(t *testing.T) {
	const tr = "<Durability>transient</Durability>"
	xml := sowDoc(
		`<Topic><Name>f</Name><MessageType>fix</MessageType><Key>/35</Key>`+tr+`</Topic>`,
		`<Topic><Name>b</Name><MessageType>bflat</MessageType>`+tr+`</Topic>`,
		`<Topic><Name>u</Name><Pattern>^user/\w+$</Pattern><MessageType>json</MessageType><Key>/id</Key>`+tr+`</Topic>`,
	)
	if _, e := parseString(t, xml, nil); e != nil {
		t.Fatalf("Parse: %v", e)
	}
}

// TestSOWValidateGoValues checks that Validate hands Go-written topics to
// the broker's checks too, so that what broker.New would panic on is an
// error first.
func TestSOWValidateGoValues(t *testing.T) {
	c := &Config{Name: "x", SOW: []SOWTopic{
		{Name: "ok", MessageType: "json", Keys: []string{"/id"}},
		{Name: "both", Pattern: "(", MessageType: "json"},
		{Name: "bad", MessageType: "json", Keys: []string{"/x y"}},
	}}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad Pattern and a bad Key")
	}
	want := "config: 2 errors:\n" +
		"\tSOW/Topic[2]/Pattern: SOW Topic \"both\": Pattern \"(\" is not a valid regular expression: error parsing regexp: missing closing ): `(`\n" +
		"\tSOW/Topic[3]: SOW topic \"bad\": Key \"/x y\" is not a field such as /id"
	if err.Error() != want {
		t.Errorf("Validate:\n%v\nwant:\n%s", err, want)
	}
	c.SOW = c.SOW[:1]
	if err := c.Validate(); err != nil {
		t.Errorf("valid topics: %v", err)
	}
	o := c.BrokerOptions()
	if err := o.Validate(); err != nil {
		t.Errorf("broker refuses options of a valid Config: %v", err)
	}
}

// TestSOWShadowedWarning checks the warning for a Name topic that an
// earlier Pattern topic of its type holds, and that order decides.
func TestSOWShadowedWarning(t *testing.T) {
	const tr = "<Durability>transient</Durability>"
	pattern := `<Topic><Name>users</Name><Pattern>user/.*</Pattern><MessageType>json</MessageType>` + tr + `</Topic>`
	named := `<Topic><Name>user/admin</Name><MessageType>json</MessageType>` + tr + `</Topic>`
	other := `<Topic><Name>user/admin</Name><MessageType>fix</MessageType>` + tr + `</Topic>`

	cfg, e := parseString(t, sowDoc(pattern, named, other), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, string(w.Code)+" "+w.Error())
	}
	want := `CFG-SOW-TOPIC SOW/Topic[2]: SOW Topic "user/admin" (json) is never used: the Pattern "user/.*" of Topic[1] comes first and holds it (put it before the pattern topic) (line 5)`
	if strings.Join(got, "\n") != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	// The named topic first: it wins, nothing to warn about.
	cfg, e = parseString(t, sowDoc(named, pattern), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings for a named topic before the pattern: %v", cfg.Warnings)
	}
}
