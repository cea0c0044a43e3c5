package admin

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/ampsbroker/ampsbroker/transport"
)

// AdminTransport is the transport name the admin server has in the
// questions it asks an Authenticator or Entitler (AMPS calls its admin
// server the transport "amps-admin" in entitlement paths, spec §3).
const AdminTransport = adminTransport

// ErrNoCredentials is returned by the function BasicAuthenticator makes
// for a request without Basic credentials; the handler answers it with
// 401 and a Basic challenge.
var ErrNoCredentials = errors.New("admin: the request has no Basic credentials")

// BasicAuthenticator makes an Options.Authenticate from a broker
// Authenticator: the request's Basic credentials are its user_id and
// password, as if they came in a logon on the transport AdminTransport
// (client_name AdminTransport). A nil a (AMPS's default module) accepts
// every request: the Basic user name when there is one, else the
// anonymous user "".
func BasicAuthenticator(a broker.Authenticator) func(r *http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		user, password, ok := r.BasicAuth()
		if a == nil {
			return user, nil
		}
		if !ok {
			return "", ErrNoCredentials
		}
		info := &transport.ConnInfo{Transport: AdminTransport, Protocol: "http", Request: r, TLS: r.TLS}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			info.RemoteAddr = net.TCPAddrFromAddrPort(ap)
		}
		req := &broker.LogonRequest{
			Header: &protocol.Header{Command: protocol.CmdLogon, UserID: user, Password: password, ClientName: AdminTransport},
			Conn:   info,
		}
		if err := a.Authenticate(r.Context(), req); err != nil {
			return "", fmt.Errorf("user %q: %w", user, err)
		}
		return user, nil
	}
}
