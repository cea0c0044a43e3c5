package ampsbroker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"time"

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
	if _, err := c.Subscribe(ctx, `^prices/`, func(m broker.Message) { got <- m }); err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, "prices/EURUSD", []byte(`{"bid":1.0842}`)); err != nil {
		log.Fatal(err)
	}
	m := <-got
	fmt.Printf("%s %s\n", m.Topic, m.Data)
	// Output: prices/EURUSD {"bid":1.0842}
}

// A unit test needs an AMPS broker for a client under test: start one on
// 127.0.0.1:0 in milliseconds and point the client at l.Addr(). Here the
// "client" is a few lines speaking the stream encoding by hand: a 4-byte
// big-endian length, then the JSON header.
func Example_brokerForTests() {
	b := broker.New(nil)
	l, err := listener.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		log.Fatal(err)
	}
	go b.Serve(l)
	defer b.Close()

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	logon := `{"c":"logon","cid":"1","client_name":"test","mt":"json","a":"processed"}`
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(logon)))
	if _, err := conn.Write(append(frame, logon...)); err != nil {
		log.Fatal(err)
	}

	r := bufio.NewReader(conn)
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		log.Fatal(err)
	}
	ack := make([]byte, n)
	if _, err := io.ReadFull(r, ack); err != nil {
		log.Fatal(err)
	}
	var h struct{ C, Status, Reason string }
	if err := json.Unmarshal(ack, &h); err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.C, h.Status, h.Reason)
	// Output: ack success authentication disabled
}
