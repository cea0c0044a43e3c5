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
