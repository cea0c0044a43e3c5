// Package protocol implements the AMPS client wire protocol: the JSON message
// header (Header, DecodeHeader, AppendHeader), outbound messages as values
// (Message, with a SharedHeader for deliveries fanned out to many
// connections), the stream encoding used on TCP, TLS and Unix sockets
// (StreamReader, NewStreamConn, AppendStreamMessage) and the WebSocket
// encoding of the official JavaScript client (WSDecoder, WSEncoder). All
// JSON headers are written by AppendHeader's code. Section numbers in
// comments point to the team's wire specification, amps-wire-protocol.md,
// which is not part of this repository; each comment states its rule itself.
//
// The codecs never touch the broker's state and allocate little: decoding a
// header allocates only the strings it stores, encoding one allocates
// nothing when the destination has room, and reading a frame reuses one
// buffer per connection.
package protocol
