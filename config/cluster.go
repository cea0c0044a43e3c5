package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// NATSCluster is an element of our own (AMPS has none like it): the
// settings of a node of a cluster of brokers over NATS, which
// natscluster's ampsd-cluster reads. The config package only holds them as
// plain values and never depends on NATS.
//
//	<NATSCluster>
//	  <URL>nats://n1:4222</URL>        one or more: NATS servers of the cluster
//	  <URL>nats://n2:4222</URL>
//	  <Prefix>amps.bus</Prefix>        optional: subject prefix, the same on every node
//	  <NodeID>a</NodeID>               optional: id of this node's publishes
//	  <CAFile>ca.pem</CAFile>          optional: authorities of the NATS servers' certificates
//	  <Certificate>c.pem</Certificate> optional, with PrivateKey: client certificate
//	  <PrivateKey>c.key</PrivateKey>
//	  <Credentials>n.creds</Credentials> optional: NATS credentials file (JWT and seed)
//	  <JournalStream>AMPS_JOURNAL</JournalStream>  optional, with a TransactionLog
//	  <JournalReplicas>3</JournalReplicas>         optional, with a TransactionLog
//	</NATSCluster>
//
// Instead of URLs, an Embedded child runs a nats-server with JetStream
// inside the node, which the node connects to in-process (a single-binary
// cluster: every node embeds one, routed to the others):
//
//	<NATSCluster>
//	  <Embedded>
//	    <Listen>127.0.0.1:4222</Listen>          optional: client listener, for other NATS clients
//	    <ClusterListen>0.0.0.0:6222</ClusterListen> route listener; needed with Route
//	    <Route>nats-route://n2:6222</Route>      one per other server (this one's own may be listed)
//	    <Route>nats-route://n3:6222</Route>
//	    <ClusterName>ampsbroker</ClusterName>   optional, the same on every node
//	    <ServerName>n1</ServerName>             optional: unique in the cluster, stable across restarts
//	    <StoreDirectory>/var/lib/ampsd/nats</StoreDirectory> optional: the JetStream store
//	  </Embedded>
//	</NATSCluster>
//
// With a TransactionLog, the nodes share one transaction log on the
// JetStream stream JournalStream, each entry held by JournalReplicas NATS
// nodes before a persisted ack (the TransactionLog's Topic entries still
// say what is journaled). Empty or zero fields take the defaults of
// package natscluster.
type NATSCluster struct {
	URLs            []string
	Prefix          string
	NodeID          string
	CAFile          string
	Certificate     string
	PrivateKey      string
	Credentials     string
	JournalStream   string
	JournalReplicas int
	// Embedded, when not nil, is the node's own NATS server (no URLs).
	Embedded *NATSEmbedded
}

// NATSEmbedded is the Embedded child of NATSCluster: a nats-server the
// node runs itself (natscluster.ServerConfig). Empty fields take the
// defaults of package natscluster.
type NATSEmbedded struct {
	Listen         string   // client listener host:port
	ClusterListen  string   // route listener host:port; "" for a stand-alone server
	Routes         []string // the other servers' route listeners
	ClusterName    string
	ServerName     string
	StoreDirectory string
}

// MaxJournalReplicas is the most copies JetStream keeps of a stream.
const MaxJournalReplicas = 5

// natsClusterKids are the children of NATSCluster.
var natsClusterKids = map[string]*elem{
	"URL":             leaves(),
	"Prefix":          leaf(),
	"NodeID":          leaf(),
	"CAFile":          leaf(),
	"Certificate":     leaf(),
	"PrivateKey":      leaf(),
	"Credentials":     leaf(),
	"JournalStream":   leaf(),
	"JournalReplicas": leaf(),
	"Embedded":        block(natsEmbeddedKids),
}

// natsEmbeddedKids are the children of NATSCluster/Embedded.
var natsEmbeddedKids = map[string]*elem{
	"Listen":         leaf(),
	"ClusterListen":  leaf(),
	"Route":          leaves(),
	"ClusterName":    leaf(),
	"ServerName":     leaf(),
	"StoreDirectory": leaf(),
}

// natsCluster decodes a NATSCluster element.
func (d *decoder) natsCluster(n *node) *NATSCluster {
	c := &NATSCluster{
		Prefix:        strings.TrimSpace(d.text(n, "Prefix")),
		NodeID:        strings.TrimSpace(d.text(n, "NodeID")),
		JournalStream: strings.TrimSpace(d.text(n, "JournalStream")),
		CAFile:        strings.TrimSpace(d.text(n, "CAFile")),
		Certificate:   strings.TrimSpace(d.text(n, "Certificate")),
		PrivateKey:    strings.TrimSpace(d.text(n, "PrivateKey")),
		Credentials:   strings.TrimSpace(d.text(n, "Credentials")),
	}
	for _, u := range d.kids(n, "URL") {
		c.URLs = append(c.URLs, strings.TrimSpace(u.text))
	}
	d.remember("NATSCluster", n)
	if e := d.kid(n, "Embedded"); e != nil {
		c.Embedded = &NATSEmbedded{
			Listen:         strings.TrimSpace(d.text(e, "Listen")),
			ClusterListen:  strings.TrimSpace(d.text(e, "ClusterListen")),
			ClusterName:    strings.TrimSpace(d.text(e, "ClusterName")),
			ServerName:     strings.TrimSpace(d.text(e, "ServerName")),
			StoreDirectory: strings.TrimSpace(d.text(e, "StoreDirectory")),
		}
		for _, r := range d.kids(e, "Route") {
			c.Embedded.Routes = append(c.Embedded.Routes, strings.TrimSpace(r.text))
		}
		d.remember("NATSCluster/Embedded", e)
	}
	if v, ok := value(d, n, "JournalReplicas", parseCount); ok {
		c.JournalReplicas = int(v)
	}
	return c
}

// validate reports what is wrong with the cluster settings: no URL, a URL
// that is not nats://, tls://, ws:// or wss://, a Certificate without a
// PrivateKey or the reverse, a replication factor outside
// 1..MaxJournalReplicas, and what NATSEmbedded.validate refuses. The
// files are read when the node connects.
func (n *NATSCluster) validate(c *Config, ds *diags) {
	switch {
	case n.Embedded != nil && len(n.URLs) > 0:
		ds.errorf(CodeCluster, c.at("NATSCluster"), "NATSCluster has both URL and Embedded: a node connects to NATS servers or runs its own, not both")
	case n.Embedded != nil && (n.CAFile != "" || n.Certificate != "" || n.PrivateKey != "" || n.Credentials != ""):
		// The node reaches its own server in process: there is no link
		// to secure (the embedded servers' routes are configured in Go).
		ds.errorf(CodeCluster, c.at("NATSCluster"), "NATSCluster has Embedded with CAFile, Certificate, PrivateKey or Credentials: those secure a link to NATS servers elsewhere; an embedded server is reached in process")
	case n.Embedded != nil:
		n.Embedded.validate(c, ds)
	case len(n.URLs) == 0:
		ds.errorf(CodeCluster, c.at("NATSCluster"), "NATSCluster needs at least one URL of a NATS server, or an Embedded server")
	}
	for i, raw := range n.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss") {
			ds.errorf(CodeCluster, c.at(fmt.Sprintf("NATSCluster/URL[%d]", i+1)), "NATSCluster URL %q is not a NATS server URL (nats://host:port)", raw)
		}
	}
	if (n.Certificate == "") != (n.PrivateKey == "") {
		ds.errorf(CodeCluster, c.at("NATSCluster"), "NATSCluster Certificate and PrivateKey go together")
	}
	if n.JournalReplicas < 0 || n.JournalReplicas > MaxJournalReplicas {
		ds.errorf(CodeCluster, c.at("NATSCluster/JournalReplicas"), "NATSCluster JournalReplicas %d must be in 1..%d", n.JournalReplicas, MaxJournalReplicas)
	}
}

// validate reports a Listen or ClusterListen that is not host:port with a
// port number, a Route that is not nats-route://host:port (nats:// or a
// bare host:port also do), and Routes without a ClusterListen.
func (e *NATSEmbedded) validate(c *Config, ds *diags) {
	for _, l := range []struct{ name, v string }{{"Listen", e.Listen}, {"ClusterListen", e.ClusterListen}} {
		if l.v != "" && !isHostPort(l.v) {
			ds.errorf(CodeCluster, c.at("NATSCluster/Embedded/"+l.name), "NATSCluster Embedded %s %q is not host:port", l.name, l.v)
		}
	}
	if len(e.Routes) > 0 && e.ClusterListen == "" {
		ds.errorf(CodeCluster, c.at("NATSCluster/Embedded"), "NATSCluster Embedded Route needs a ClusterListen, the route listener of this server")
	}
	for i, r := range e.Routes {
		hp := r
		if s, rest, ok := strings.Cut(r, "://"); ok {
			if s != "nats-route" && s != "nats" {
				hp = ""
			} else {
				hp = rest
			}
		}
		if !isHostPort(hp) || strings.HasPrefix(hp, ":") {
			ds.errorf(CodeCluster, c.at(fmt.Sprintf("NATSCluster/Embedded/Route[%d]", i+1)), "NATSCluster Embedded Route %q is not nats-route://host:port", r)
		}
	}
}

// isHostPort says whether s is host:port with a port number (the host may
// be empty: every address).
func isHostPort(s string) bool {
	_, p, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}
