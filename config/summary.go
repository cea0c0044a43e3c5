package config

import (
	"cmp"
	"fmt"
	"strings"
)

// Summary describes the instance and its transports for humans, e.g. for
// "ampsd -check-config". It ends with the warnings Parse collected.
func (c *Config) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "instance %s", c.Name)
	if c.Description != "" {
		fmt.Fprintf(&b, " (%s)", c.Description)
	}
	b.WriteString("\n")
	if c.MessageMemoryLimit > 0 || c.ClientMessageAgeLimit > 0 || c.ClientMaxCapacity > 0 {
		fmt.Fprintf(&b, "  slow clients: MessageMemoryLimit=%s ClientMessageAgeLimit=%v ClientMaxCapacity=%v%%\n",
			formatSize(c.MessageMemoryLimit), c.ClientMessageAgeLimit, capacityOrDefault(c.ClientMaxCapacity))
	}
	if c.Authentication != nil || c.Entitlement != nil {
		fmt.Fprintf(&b, "  authentication: %s\n  entitlement: %s\n", describeModule(c.Authentication), describeModule(c.Entitlement))
	}
	fmt.Fprintf(&b, "  %d transport(s)\n", len(c.Transports))
	for _, t := range c.Transports {
		where := t.InetAddr
		if t.Type == TypeUnix {
			where = t.FileName
			if t.FileMask != 0 {
				where += fmt.Sprintf(" mode %04o", uint32(t.FileMask))
			}
		}
		mt := t.MessageType
		if mt == "" {
			mt = "any"
		}
		extra := ""
		if t.usesTLS() {
			extra += " tls"
			if t.VerifyClient {
				extra += "+client-cert"
			}
		}
		if t.protocol() == ProtocolWebSocket && t.PerMessageDeflate {
			extra += " deflate"
		}
		if !t.enabled() {
			extra += " (disabled)"
		}
		fmt.Fprintf(&b, "    %-16s %-9s %-9s %-6s %s%s\n", t.Name, t.Type, t.protocol(), mt, where, extra)
		if t.Authentication != nil {
			fmt.Fprintf(&b, "      %s: authentication %s\n", t.Name, describeModule(t.Authentication))
		}
		if t.Entitlement != nil {
			fmt.Fprintf(&b, "      %s: entitlement %s\n", t.Name, describeModule(t.Entitlement))
		}
	}
	if len(c.SOW) > 0 {
		fmt.Fprintf(&b, "  %d SOW topic(s)\n", len(c.SOW))
		for _, s := range c.SOW {
			keys := strings.Join(s.Keys, ",")
			if keys == "" {
				keys = "explicit keys"
			}
			holds := ""
			if s.Pattern != "" {
				holds = fmt.Sprintf(" holding topics matching %q,", s.Pattern)
			}
			fmt.Fprintf(&b, "    %s (%s)%s key %s, %s\n", s.Name, s.MessageType, holds, keys, durabilityOrDefault(s.Durability))
		}
	}
	if a := c.Admin; a != nil && a.InetAddr != "" {
		scheme := "http"
		if a.Certificate != "" {
			scheme = "https"
		}
		fmt.Fprintf(&b, "  admin: %s on %s, interval %v\n", scheme, a.InetAddr, a.Interval)
	}
	if c.TransactionLog != nil {
		writeTxLogSummary(&b, c.TransactionLog)
	}
	if n := c.NATSCluster; n != nil && n.Embedded != nil {
		e := n.Embedded
		fmt.Fprintf(&b, "  cluster over an embedded NATS server: clients on %s, routes on %s to %s\n",
			cmp.Or(e.Listen, "the default"), cmp.Or(e.ClusterListen, "none"), cmp.Or(strings.Join(e.Routes, ", "), "none"))
	} else if n != nil {
		fmt.Fprintf(&b, "  cluster over NATS: %s\n", strings.Join(n.URLs, ", "))
	}
	if len(c.Warnings) > 0 {
		fmt.Fprintf(&b, "  %d warning(s)\n", len(c.Warnings))
		for _, w := range c.Warnings {
			fmt.Fprintf(&b, "    %s [%s]\n", w.Error(), w.Code)
		}
	}
	return b.String()
}

// writeTxLogSummary describes the journal with its effective values.
func writeTxLogSummary(b *strings.Builder, tl *TransactionLog) {
	l := tl.WithDefaults()
	fmt.Fprintf(b, "  transaction log in %s", l.JournalDirectory)
	if l.JournalArchiveDirectory != "" {
		fmt.Fprintf(b, " (archive %s)", l.JournalArchiveDirectory)
	}
	fmt.Fprintf(b, ": files of %s, flush within %v", formatSize(l.EffectiveJournalSize()), l.FlushInterval)
	if l.InactiveClientAckExpiration > 0 {
		fmt.Fprintf(b, ", idle publishers forgotten after %v", l.InactiveClientAckExpiration)
	}
	fmt.Fprintf(b, "\n    %d journaled topic(s)\n", len(l.Topics))
	for _, t := range l.Topics {
		how := "literal"
		if strings.ContainsAny(t.Name, topicRegexMeta) {
			how = "regex"
		}
		fmt.Fprintf(b, "      %s (%s) %s\n", t.Name, t.MessageType, how)
	}
}

func capacityOrDefault(v float64) float64 {
	if v == 0 {
		return DefaultClientMaxCapacity
	}
	return v
}

func durabilityOrDefault(d string) string {
	if d == "" {
		return DurabilityTransient
	}
	return d
}

// Sample returns a commented configuration with one transport of each kind
// (tcp, websocket, tcps and amps-unix), for "ampsd -sample-config". It
// parses without errors when the variables TLS_DIR (holding server.crt and
// server.key) and RUN_DIR are defined.
func Sample() []byte {
	return []byte(sampleConfig)
}

const sampleConfig = `<?xml version="1.0" encoding="UTF-8"?>
<!--
  Sample ampsbroker configuration (AMPS AMPSConfig format).
  ${NAME} is replaced by the environment variable NAME; an undefined
  variable is an error. Sizes take KB/MB/GB, intervals ms/s/m/h/d.
-->
<AMPSConfig>
  <!-- Instance name, used in logs. Required. -->
  <Name>sample-broker</Name>

  <!-- Slow clients: each client may queue ClientMaxCapacity of
       MessageMemoryLimit; a client whose oldest queued message is older
       than ClientMessageAgeLimit is disconnected. -->
  <MessageMemoryLimit>512MB</MessageMemoryLimit>
  <ClientMaxCapacity>25%</ClientMaxCapacity>
  <ClientMessageAgeLimit>30s</ClientMessageAgeLimit>

  <!-- Security modules for every transport that does not name its own.
       The default modules accept every logon and allow every topic.
       Other choices: amps-default-no-authentication-module (refuse all),
       amps-default-no-entitlement-module (deny all), a module declared
       under Modules, or a name the Go host registered. -->
  <Authentication>
    <Module>amps-default-authentication-module</Module>
    <Options>
      <!-- true: a logon without user_id is refused -->
      <RequireUsername>false</RequireUsername>
    </Options>
  </Authentication>
  <Entitlement>
    <Module>amps-default-entitlement-module</Module>
  </Entitlement>

  <!-- Topic-based entitlement, the same for every user; the Unix socket
       transport below uses it. -->
  <Modules>
    <Module>
      <Name>local-access</Name>
      <Library>libamps_simple_access_entitlement.so</Library>
    </Module>
  </Modules>

  <Transports>
    <!-- Plain TCP: tcp://host:9007/amps/json -->
    <Transport>
      <Name>json-tcp</Name>
      <Type>tcp</Type>
      <InetAddr>9007</InetAddr>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
    </Transport>

    <!-- WebSocket for the JavaScript client: ws://host:9008/amps/json -->
    <Transport>
      <Name>json-ws</Name>
      <Type>tcp</Type>
      <InetAddr>9008</InetAddr>
      <Protocol>websocket</Protocol>
      <MessageType>json</MessageType>
    </Transport>

    <!-- TLS: tcps://host:9443/amps/json -->
    <Transport>
      <Name>json-tls</Name>
      <Type>tcps</Type>
      <InetAddr>9443</InetAddr>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
      <Certificate>${TLS_DIR}/server.crt</Certificate>
      <PrivateKey>${TLS_DIR}/server.key</PrivateKey>
      <SecureSocketProtocols>TLSv1.2 TLSv1.3</SecureSocketProtocols>
    </Transport>

    <!-- Unix domain socket for processes on this host -->
    <Transport>
      <Name>json-local</Name>
      <Type>amps-unix</Type>
      <FileName>${RUN_DIR}/amps.sock</FileName>
      <FileMask>0660</FileMask>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
      <!-- Local processes may read and write every topic except those
           under admin/ (regular expressions; deny wins). -->
      <Entitlement>
        <Module>local-access</Module>
        <Options>
          <AllowedTopics>.*</AllowedTopics>
          <DeniedTopics>^admin/</DeniedTopics>
          <GrantedPermissions>read,write</GrantedPermissions>
        </Options>
      </Entitlement>
    </Transport>
  </Transports>

  <!-- State-of-the-World topics, kept in memory. A topic is held by the
       first definition that names it or whose Pattern matches it. -->
  <SOW>
    <!-- One topic keyed on /id: a publish with a new /id adds a record,
         one with a known /id replaces it. -->
    <Topic>
      <Name>orders</Name>
      <MessageType>json</MessageType>
      <Key>/id</Key>
      <Durability>transient</Durability>
    </Topic>
    <!-- Every topic whose whole name matches the Pattern (prices/AAPL,
         prices/MSFT, ...) is a SOW topic of its own, keyed on /venue and
         /instrument together. Name names the definition. -->
    <Topic>
      <Name>prices</Name>
      <Pattern>prices/.+</Pattern>
      <MessageType>json</MessageType>
      <Key>/venue</Key>
      <Key>/instrument</Key>
      <Durability>transient</Durability>
    </Topic>
  </SOW>

  <!-- The admin HTTP server: the AMPS admin tree (/amps.json,
       /amps/instance/clients.json, ...) sampled every Interval. Its
       statistics need no credentials, so it listens on loopback only;
       its actions are refused unless ampsd runs with
       -admin-open-actions or the element has an Authentication or
       Entitlement of its own (Basic credentials; entitlements asked for
       each path, e.g. DeniedTopics ^/amps/administrator for a read-only
       console). Certificate and PrivateKey would make it HTTPS. -->
  <Admin>
    <InetAddr>127.0.0.1:8085</InetAddr>
    <Interval>10s</Interval>
  </Admin>

  <!-- Transaction log (journal) for bookmark replay and persisted acks.
       Not served by this broker yet, so it is commented out; the
       defaults are shown. A Topic Name without regular-expression
       characters is one topic; otherwise it is a regular expression
       searched for anywhere in the topic name (^fills/ records every
       topic that starts with fills/). A persistent SOW topic (the default
       Durability) is rebuilt from this journal, so it must be recorded
       here.
  <TransactionLog>
    <JournalDirectory>${RUN_DIR}/journal</JournalDirectory>
    <JournalSize>1GB</JournalSize>
    <PreallocatedJournalFiles>2</PreallocatedJournalFiles>
    <FlushInterval>100ms</FlushInterval>
    <Topic>
      <Name>orders</Name>
      <MessageType>json</MessageType>
    </Topic>
    <Topic>
      <Name>^fills/</Name>
      <MessageType>json</MessageType>
    </Topic>
  </TransactionLog>
  -->
</AMPSConfig>
`
