package config

import (
	"slices"
	"strings"
	"testing"
)

func TestNATSClusterElement(t *testing.T) {
	cfg, e := parseString(t, doc(`<NATSCluster>
<URL>nats://n1:4222</URL>
<URL> nats://n2:4222 </URL>
<Prefix>amps.prod</Prefix>
<NodeID>a</NodeID>
<JournalStream>J</JournalStream>
<JournalReplicas>3</JournalReplicas>
<CAFile>ca.pem</CAFile><Certificate>c.pem</Certificate><PrivateKey>c.key</PrivateKey><Credentials>n.creds</Credentials>
</NATSCluster>`), nil)
	if e != nil {
		t.Fatal(e)
	}
	n := cfg.NATSCluster
	if n == nil || !slices.Equal(n.URLs, []string{"nats://n1:4222", "nats://n2:4222"}) || n.Prefix != "amps.prod" ||
		n.NodeID != "a" || n.JournalStream != "J" || n.JournalReplicas != 3 ||
		n.CAFile != "ca.pem" || n.Certificate != "c.pem" || n.PrivateKey != "c.key" || n.Credentials != "n.creds" {
		t.Errorf("NATSCluster = %+v", n)
	}
	if !strings.Contains(cfg.Summary(), "cluster over NATS: nats://n1:4222, nats://n2:4222") {
		t.Errorf("summary does not name the cluster:\n%s", cfg.Summary())
	}
	if cfg, e := parseString(t, doc(""), nil); e != nil || cfg.NATSCluster != nil {
		t.Errorf("without the element: NATSCluster %+v, err %v", cfg.NATSCluster, e)
	}
}

func TestNATSClusterErrors(t *testing.T) {
	for _, tc := range []struct{ xml, want string }{
		{`<NATSCluster><Prefix>p</Prefix></NATSCluster>`, "needs at least one URL"},
		{`<NATSCluster><URL>http://n1:4222</URL></NATSCluster>`, `URL "http://n1:4222" is not a NATS server URL`},
		{`<NATSCluster><URL>n1:4222</URL></NATSCluster>`, "is not a NATS server URL"},
		{`<NATSCluster><URL>nats://n1</URL><JournalReplicas>7</JournalReplicas></NATSCluster>`, "JournalReplicas 7 must be in 1..5"},
		{`<NATSCluster><URL>nats://n1</URL><Certificate>c.pem</Certificate></NATSCluster>`, "Certificate and PrivateKey go together"},
	} {
		_, e := parseString(t, doc(tc.xml), nil)
		if e == nil || !e.Has(CodeCluster) || !strings.Contains(e.Error(), tc.want) {
			t.Errorf("%s: %v, want a %s error with %q", tc.xml, e, CodeCluster, tc.want)
		}
	}
}

func TestNATSClusterEmbedded(t *testing.T) {
	cfg, e := parseString(t, doc(`<NATSCluster><Embedded>
<Listen>127.0.0.1:4222</Listen>
<ClusterListen>:6222</ClusterListen>
<Route>nats-route://n2:6222</Route>
<Route> n3:6222 </Route>
<ClusterName>c</ClusterName><ServerName>n1</ServerName>
<StoreDirectory>/var/lib/nats</StoreDirectory>
</Embedded><Prefix>p</Prefix></NATSCluster>`), nil)
	if e != nil {
		t.Fatal(e)
	}
	n := cfg.NATSCluster
	if n == nil || n.Embedded == nil || len(n.URLs) != 0 || n.Prefix != "p" {
		t.Fatalf("NATSCluster = %+v", n)
	}
	want := NATSEmbedded{Listen: "127.0.0.1:4222", ClusterListen: ":6222", Routes: []string{"nats-route://n2:6222", "n3:6222"},
		ClusterName: "c", ServerName: "n1", StoreDirectory: "/var/lib/nats"}
	if got := *n.Embedded; !slices.Equal(got.Routes, want.Routes) || got.Listen != want.Listen || got.ClusterListen != want.ClusterListen ||
		got.ClusterName != want.ClusterName || got.ServerName != want.ServerName || got.StoreDirectory != want.StoreDirectory {
		t.Errorf("Embedded = %+v, want %+v", got, want)
	}
	if !strings.Contains(cfg.Summary(), "embedded NATS server: clients on 127.0.0.1:4222, routes on :6222 to nats-route://n2:6222, n3:6222") {
		t.Errorf("summary does not describe the embedded server:\n%s", cfg.Summary())
	}
	// An empty Embedded is a stand-alone server with every default.
	if cfg, e := parseString(t, doc(`<NATSCluster><Embedded/></NATSCluster>`), nil); e != nil || cfg.NATSCluster.Embedded == nil {
		t.Errorf("empty Embedded: %+v, %v", cfg, e)
	}
}

func TestNATSClusterEmbeddedErrors(t *testing.T) {
	for _, tc := range []struct {
		xml  string
		code Code
		want string
	}{
		{`<NATSCluster><URL>nats://n1:4222</URL><Embedded/></NATSCluster>`, CodeCluster, "both URL and Embedded"},
		{`<NATSCluster><Embedded/><CAFile>ca.pem</CAFile></NATSCluster>`, CodeCluster, "Embedded with CAFile"},
		{`<NATSCluster><Embedded/><Credentials>n.creds</Credentials></NATSCluster>`, CodeCluster, "reached in process"},
		{`<NATSCluster><Embedded><Listen>4222</Listen></Embedded></NATSCluster>`, CodeCluster, `Listen "4222" is not host:port`},
		{`<NATSCluster><Embedded><ClusterListen>h:x</ClusterListen></Embedded></NATSCluster>`, CodeCluster, `ClusterListen "h:x" is not host:port`},
		{`<NATSCluster><Embedded><Route>n2:6222</Route></Embedded></NATSCluster>`, CodeCluster, "Route needs a ClusterListen"},
		{`<NATSCluster><Embedded><ClusterListen>:6222</ClusterListen><Route>tls://n2:6222</Route></Embedded></NATSCluster>`, CodeCluster, `Route "tls://n2:6222" is not nats-route://host:port`},
		{`<NATSCluster><Embedded><ClusterListen>:6222</ClusterListen><Route>n2</Route></Embedded></NATSCluster>`, CodeCluster, `Route "n2"`},
		{`<NATSCluster><Embedded><Listen>:1</Listen><Routes>x</Routes></Embedded></NATSCluster>`, CodeUnknownElement, "did you mean Route"},
	} {
		_, e := parseString(t, doc(tc.xml), nil)
		if e == nil || !e.Has(tc.code) || !strings.Contains(e.Error(), tc.want) {
			t.Errorf("%s: %v, want a %s error with %q", tc.xml, e, tc.code, tc.want)
		}
	}
}
