package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

func TestSubstitution(t *testing.T) {
	xml := doc(`<Description>${A}-${B}-${AMPS_VERSION}-${UNTERMINATED</Description>
<ClientMessageAgeLimit>${AGE}</ClientMessageAgeLimit>
<!-- ${IN_COMMENT} is not expanded -->`)
	env := map[string]string{"B": "from-env", "AGE": "from-env-too"}
	cfg, e := parseString(t, xml, &ParseOptions{
		Vars:      map[string]string{"A": "from-vars", "AGE": "250ms"},
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Version:   "5.3.5.0",
	})
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	if want := "from-vars-from-env-5.3.5.0-${UNTERMINATED"; cfg.Description != want {
		t.Errorf("Description = %q, want %q", cfg.Description, want)
	}
	if cfg.ClientMessageAgeLimit != 250*time.Millisecond {
		t.Errorf("ClientMessageAgeLimit = %v: Vars must win over the environment", cfg.ClientMessageAgeLimit)
	}

	// lenient: undefined is empty plus a warning.
	cfg, e = parseString(t, doc("<Description>x${NOPE}y</Description>"), &ParseOptions{Lenient: true, LookupEnv: func(string) (string, bool) { return "", false }})
	if e != nil {
		t.Fatalf("lenient Parse: %v", e)
	}
	if cfg.Description != "xy" || len(cfg.Warnings) != 1 || cfg.Warnings[0].Code != CodeEnvUndefined {
		t.Errorf("lenient: Description %q, warnings %v", cfg.Description, cfg.Warnings)
	}
}

func TestValuesDecoded(t *testing.T) {
	cfg, e := parseString(t, doc(`<MessageMemoryLimit>10MB</MessageMemoryLimit>
<ClientMessageAgeLimit>5m</ClientMessageAgeLimit>
<ClientMaxCapacity>20</ClientMaxCapacity>
<RegexTopicSupport>False</RegexTopicSupport>
<Transports>
<Transport><Name>w</Name><Type>TCP</Type><InetAddr>0</InetAddr><Protocol>WebSocket</Protocol>
  <InitialState>Disabled</InitialState><ClientMaxCapacity>10%</ClientMaxCapacity></Transport>
<Transport><Name>j</Name><Type>tcp</Type><InetAddr>[::1]:0</InetAddr><Protocol>json</Protocol></Transport>
</Transports>
<SOW><TopicDefinition><Topic>old</Topic><MessageType>json</MessageType><Duration>transient</Duration>
  <Expiration>enabled</Expiration><ExpectedKeyCountHint>10k</ExpectedKeyCountHint></TopicDefinition></SOW>`), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	if cfg.MessageMemoryLimit != 10<<20 || cfg.ClientMessageAgeLimit != 5*time.Minute || cfg.ClientMaxCapacity != 20 || !cfg.NoRegexTopics {
		t.Errorf("instance values: %+v", cfg)
	}
	w := cfg.Transports[0]
	if w.Type != TypeTCP || w.Protocol != ProtocolWebSocket || w.InitialState != StateDisabled || !w.PerMessageDeflate || w.ClientMaxCapacity != 10 {
		t.Errorf("websocket transport: %+v", w)
	}
	if j := cfg.Transports[1]; j.Protocol != ProtocolAMPS || j.PerMessageDeflate {
		t.Errorf("json synonym transport: %+v", j)
	}
	s := cfg.SOW[0]
	if s.Name != "old" || s.Durability != DurabilityTransient || !s.ExpirationEnabled || s.ExpectedKeyCountHint != 10000 {
		t.Errorf("legacy topic: %+v", s)
	}
	o := cfg.BrokerOptions()
	if o.OutboundQueueBytes != 2<<20 || o.MaxMessageAge != 5*time.Minute || o.WriteTimeout != 0 || o.Authenticator != nil {
		t.Errorf("BrokerOptions = %+v, want 2MB queue (20%% of 10MB), 5m message age, default write timeout", o)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestInclude(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "root.xml"), doc(`<Transports>
<Include>transports.xml</Include>
</Transports>`))
	writeFile(t, filepath.Join(dir, "transports.xml"), `<?xml version="1.0"?>
<Transport><Name>a</Name><Type>tcp</Type><InetAddr>0</InetAddr><Protocol>amps</Protocol></Transport>
<Transport><Name>b</Name><Type>tcp</Type><InetAddr>bad:port</InetAddr><Protocol>amps</Protocol></Transport>`)

	// Relative include paths resolve against BaseDir (amps-config §1.2).
	_, err := Load(filepath.Join(dir, "root.xml"), &ParseOptions{BaseDir: dir})
	want := `Transports/Transport[2]/InetAddr: transport "b": invalid InetAddr "bad:port": port "port" is not a decimal number (` + filepath.Join(dir, "transports.xml") + ` line 3)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load = %v\nwant error %s", err, want)
	}

	writeFile(t, filepath.Join(dir, "transports.xml"), `<Transport><Name>a</Name><Type>tcp</Type><InetAddr>0</InetAddr><Protocol>amps</Protocol></Transport>
<Transport><Name>b</Name><Type>tcp</Type><InetAddr>0</InetAddr><Protocol>amps</Protocol></Transport>`)
	cfg, err := Load(filepath.Join(dir, "root.xml"), &ParseOptions{BaseDir: dir})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(cfg.Transports) != 2 || cfg.Transports[1].Name != "b" {
		t.Errorf("transports = %+v", cfg.Transports)
	}
}

func TestIncludeCycle(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.xml"), doc("<Include>${AMPS_CONFIG_DIRECTORY}/b.xml</Include>"))
	writeFile(t, filepath.Join(dir, "b.xml"), "<Include>"+filepath.Join(dir, "c.xml")+"</Include>")
	writeFile(t, filepath.Join(dir, "c.xml"), "<Include>a.xml</Include>")
	root := filepath.Join(dir, "a.xml")
	_, err := Load(root, &ParseOptions{BaseDir: dir})
	want := "Include: Include cycle: " + root + " -> " + filepath.Join(dir, "b.xml") + " -> " + filepath.Join(dir, "c.xml") + " -> a.xml (" + filepath.Join(dir, "c.xml") + " line 1)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load = %v\nwant %s", err, want)
	}

	// Self-include.
	writeFile(t, filepath.Join(dir, "self.xml"), "<Include>self.xml</Include>")
	_, e := parseString(t, doc("<Include>self.xml</Include>"), &ParseOptions{BaseDir: dir})
	if e == nil || !e.Has(CodeIncludeCycle) {
		t.Fatalf("self include: %v", e)
	}
}

func TestSizeGuard(t *testing.T) {
	dir := t.TempDir()
	big := "<!--" + strings.Repeat("x", 4000) + "-->"
	writeFile(t, filepath.Join(dir, "big.xml"), big)
	_, e := parseString(t, doc("<Include>big.xml</Include>"), &ParseOptions{BaseDir: dir, MaxSize: 2000})
	if e == nil || !e.Has(CodeIncludeCycle) {
		t.Fatalf("size guard: %v", e)
	}
	_, e = parseString(t, doc("<ConfigCycleDetectionThreshold>1KB</ConfigCycleDetectionThreshold><Include>big.xml</Include>"), &ParseOptions{BaseDir: dir})
	if e == nil || !strings.Contains(e.Error(), "more than ConfigCycleDetectionThreshold 1024") {
		t.Fatalf("threshold element: %v", e)
	}
}

func TestSampleParses(t *testing.T) {
	dir := t.TempDir()
	crt, key := writeCert(t, dir)
	os.Rename(crt, filepath.Join(dir, "server.crt"))
	os.Rename(key, filepath.Join(dir, "server.key"))
	cfg, err := Parse(strings.NewReader(string(Sample())), &ParseOptions{Vars: map[string]string{"TLS_DIR": dir, "RUN_DIR": dir}})
	if err != nil {
		t.Fatalf("Sample does not parse: %v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("Sample warnings: %v", cfg.Warnings)
	}
	if a := cfg.Admin; a == nil || a.InetAddr != "127.0.0.1:8085" || a.Interval != DefaultAdminInterval {
		t.Errorf("Sample Admin = %+v, want a loopback admin server", a)
	}
	types := map[string]bool{}
	for _, tr := range cfg.Transports {
		types[tr.Type+"/"+tr.protocol()] = true
	}
	for _, want := range []string{"tcp/amps", "tcp/websocket", "tcps/amps", "amps-unix/amps"} {
		if !types[want] {
			t.Errorf("Sample lacks a %s transport", want)
		}
	}
	// The sample's security: default modules (nil, broker defaults) and a
	// simple access entitlement on the Unix transport.
	o := cfg.BrokerOptions()
	if o.Authenticator != nil || o.Entitler != nil || len(o.Transports) != 1 {
		t.Fatalf("Sample security = %v, %v, %+v; want defaults plus json-local", o.Authenticator, o.Entitler, o.Transports)
	}
	ent := o.Transports["json-local"].Entitler
	if ent == nil || !ent.Entitled(&broker.Identity{}, "orders", broker.Write) || ent.Entitled(&broker.Identity{}, "admin/users", broker.Read) {
		t.Errorf("json-local Entitler %v does not allow orders and deny admin/", ent)
	}
	// The sample's SOW topics reach the broker: one named, one Pattern.
	wantSOW := []broker.SOWTopic{
		{Name: "orders", MessageType: "json", Keys: []string{"/id"}},
		{Name: "prices", Pattern: "prices/.+", MessageType: "json", Keys: []string{"/venue", "/instrument"}},
	}
	if !reflect.DeepEqual(o.SOWTopics, wantSOW) {
		t.Errorf("Sample SOWTopics = %+v, want %+v", o.SOWTopics, wantSOW)
	}
	sum := cfg.Summary()
	for _, want := range []string{"instance sample-broker", "4 transport(s)", "json-tls", "tls", "amps.sock mode 0660", "2 SOW topic(s)", "orders (json) key /id, transient",
		`prices (json) holding topics matching "prices/.+", key /venue,/instrument, transient`, "json-local: entitlement local-access"} {
		if !strings.Contains(sum, want) {
			t.Errorf("Summary lacks %q:\n%s", want, sum)
		}
	}
}
