package config

import (
	"fmt"
	"net/url"
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
	if v, ok := value(d, n, "JournalReplicas", parseCount); ok {
		c.JournalReplicas = int(v)
	}
	return c
}

// validate reports what is wrong with the cluster settings: no URL, a URL
// that is not nats://, tls://, ws:// or wss://, a Certificate without a
// PrivateKey or the reverse, a replication factor outside
// 1..MaxJournalReplicas. The files are read when the node connects.
func (n *NATSCluster) validate(c *Config, ds *diags) {
	if len(n.URLs) == 0 {
		ds.errorf(CodeCluster, c.at("NATSCluster"), "NATSCluster needs at least one URL of a NATS server")
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
