package broker

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/ampsbroker/ampsbroker/transport"
)

// Permission is what an Entitler is asked to allow (semantics §8.2).
type Permission uint8

// Permissions on a topic.
const (
	// Read covers subscribing to a topic and receiving its messages.
	Read Permission = iota + 1
	// Write covers publishing to a topic.
	Write
)

// String names the permission: "read" or "write".
func (p Permission) String() string {
	switch p {
	case Read:
		return "read"
	case Write:
		return "write"
	}
	return fmt.Sprintf("Permission(%d)", uint8(p))
}

// Identity is who an entitlement question is about: the logged-on user of
// a network connection.
type Identity struct {
	// UserID is the user_id of the accepted logon.
	UserID string
	// ClientName is the client_name of the logon.
	ClientName string
	// Conn describes the connection.
	Conn *transport.ConnInfo
}

// Entitler decides what a logged-on user may do (semantics §8.2):
//
//   - subscribe to a literal topic: Read, checked once; a refusal fails the
//     subscribe with "not entitled";
//   - subscribe to a regex topic: Read, checked for each concrete topic the
//     subscription meets (a topic already in the routing cache when it
//     subscribes, or the first message on a new one); forbidden topics are
//     withheld silently. The answer is kept with the topic's routing entry
//     until Broker.ResetEntitlements or until the bounded cache evicts
//     that entry, so the same question may be asked again;
//   - publish: Write; a refusal fails the publish with "not entitled" and
//     drops the message.
//
// Entitled may be called while the broker holds its routing lock: it must
// be fast and must not block. In-process clients are part of the host
// program and are not checked.
type Entitler interface {
	// Entitled reports whether the logged-on user id may use topic with
	// permission p.
	Entitled(id *Identity, topic string, p Permission) bool
}

// EntitlerFunc adapts a function to Entitler.
type EntitlerFunc func(id *Identity, topic string, p Permission) bool

// Entitled calls f.
func (f EntitlerFunc) Entitled(id *Identity, topic string, p Permission) bool { return f(id, topic, p) }

// ErrBadCredentials is returned by UserTable for an unknown user or a
// wrong password.
var ErrBadCredentials = errors.New("broker: unknown user or wrong password")

// UserTable is an Authenticator with a fixed table from user_id to password
// (or token: whatever the client sends in "pw"). Passwords are compared in
// constant time. A user not in the table is refused.
type UserTable map[string]string

// Authenticate implements Authenticator.
func (t UserTable) Authenticate(_ context.Context, req *LogonRequest) error {
	want, ok := t[req.Header.UserID]
	// Compare even for unknown users so timing does not tell who exists.
	match := subtle.ConstantTimeCompare([]byte(want), []byte(req.Header.Password)) == 1
	if !ok || !match {
		return fmt.Errorf("%w: user %q", ErrBadCredentials, req.Header.UserID)
	}
	return nil
}

// TopicPrefixes lists the topic prefixes a user may read and write. The
// prefix "" matches every topic.
type TopicPrefixes struct {
	// Read lists the prefixes of topics the user may subscribe to.
	Read []string
	// Write lists the prefixes of topics the user may publish to.
	Write []string
}

// TopicPrefixTable is an Entitler that grants by topic prefix, per user_id.
// The entry "*" applies to every user in addition to their own entry.
// Anything not granted is refused.
type TopicPrefixTable map[string]TopicPrefixes

// Entitled implements Entitler.
func (t TopicPrefixTable) Entitled(id *Identity, topic string, p Permission) bool {
	return t[id.UserID].allows(topic, p) || t["*"].allows(topic, p)
}

func (g TopicPrefixes) allows(topic string, p Permission) bool {
	prefixes := g.Read
	if p == Write {
		prefixes = g.Write
	}
	for _, pre := range prefixes {
		if strings.HasPrefix(topic, pre) {
			return true
		}
	}
	return false
}
