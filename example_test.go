package ampsbroker_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

// Embed a broker in a service: listen, serve, and shut down gracefully.
func Example() {
	b := broker.New(nil) // zero options: accept every logon, log nothing

	l, err := listener.ListenTCP("127.0.0.1:0", nil) // port 0: any free port
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	fmt.Println("AMPS clients connect to", l.Name(), "on a loopback port:", l.Addr().(*net.TCPAddr).IP)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-served)
	// Output:
	// AMPS clients connect to tcp on a loopback port: 127.0.0.1
	// broker: closed
}

// Go code publishes and subscribes in process, through the same router as
// network clients, without a socket.
func Example_inProcessClient() {
	b := broker.New(nil)
	defer b.Close()
	ctx := context.Background()

	c, err := b.Connect(ctx, "prices-service", nil)
	if err != nil {
		log.Fatal(err)
	}
	got := make(chan broker.Message)
	// A topic with regex characters is an unanchored regular expression.
	if _, err := c.Subscribe(ctx, `^prices/`, func(m broker.Message) { got <- m }, nil); err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, "prices/EURUSD", []byte(`{"bid":1.0842}`)); err != nil {
		log.Fatal(err)
	}
	m := <-got
	fmt.Printf("%s %s\n", m.Topic, m.Data)
	// Output: prices/EURUSD {"bid":1.0842}
}

// A content filter delivers only the messages for which it is TRUE. It is
// compiled at Subscribe, which returns what is wrong with a bad one.
func Example_contentFilter() {
	b := broker.New(nil)
	defer b.Close()
	ctx := context.Background()

	c, err := b.Connect(ctx, "risk-service", nil)
	if err != nil {
		log.Fatal(err)
	}
	got := make(chan broker.Message, 3)
	big := &broker.SubscribeOptions{Filter: "/sym = 'IBM' AND /qty > 100"}
	if _, err := c.Subscribe(ctx, "orders", func(m broker.Message) { got <- m }, big); err != nil {
		log.Fatal(err)
	}
	for _, order := range []string{`{"sym":"IBM","qty":50}`, `{"sym":"MSFT","qty":500}`, `{"sym":"IBM","qty":500}`} {
		if err := c.Publish(ctx, "orders", []byte(order)); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("%s\n", (<-got).Data)

	_, err = c.Subscribe(ctx, "orders", func(broker.Message) {}, &broker.SubscribeOptions{Filter: "/qty >"})
	fmt.Println(err)
	// Output:
	// {"sym":"IBM","qty":500}
	// broker: subscribe to "orders": bad filter: filter: at byte 6: expected a field, literal, function call or '(', found end of input
}

// A unit test of an AMPS application starts a broker with ampstest: it
// listens on loopback ports, hands out the URIs real clients take, and
// stops (checking that none of its goroutines is left) when the test ends.
// The test client of ampstest speaks the wire protocol to check what the
// application published.
func Example_ampstest() {
	t := &testing.T{} // in a real test, the *testing.T the test was given
	b := ampstest.NewBroker(t, nil)
	defer b.Stop() // a real test leaves this and the Close calls to t.Cleanup

	sub := ampstest.Dial(t, b.TCPURL(), nil)
	defer sub.Close()
	sub.Logon("checker")
	sub.Subscribe("s1", "orders")

	// The application under test would publish here, with its own client
	// pointed at b.TCPURL() or b.WSURL().
	pub := ampstest.Dial(t, b.WSURL(), nil)
	defer pub.Close()
	pub.Logon("app")
	pub.Publish("orders", []byte(`{"qty":5}`))

	m := sub.Next()
	fmt.Println(m.Header.Command, m.Header.Topic, m.Header.SubIDs, string(m.Body))
	// Output: p orders s1 {"qty":5}
}
