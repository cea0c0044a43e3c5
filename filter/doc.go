// Package filter implements the AMPS content filter language: the
// expressions a subscriber gives with a subscription (for example
// `/symbol = 'IBM' AND /qty > 100`) to receive only the messages for which
// the expression is TRUE.
//
// This increment provides the front end: [Parse] turns a filter string into
// a small typed syntax tree ([Node]) or a positioned [*Error]. The language
// is AMPS's: XPath-like field identifiers (`/a/b`, `/55`, `/@attr`,
// `[/name with spaces]`, an optional `[n]` subscript), integer, float and
// (raw) string literals, arithmetic, comparisons, BETWEEN, IN, LIKE,
// BEGINS WITH, ENDS WITH, IS [NOT] NULL, IS [NOT] NAN, NOT, AND, OR, and
// the scalar functions AMPS offers to filters. Every node prints, with
// String, a fully parenthesised canonical form that parses back to itself.
//
// The fields side is in place too: an [Extractor], compiled once for the
// union of the paths that the filters on a topic name and for a message
// type (json, fix, nvfix), reads those fields' values out of a message body
// in one scan that stops as soon as every path is complete, into reusable
// [Fields] without allocating.
//
// Evaluating a parsed filter over extracted fields (AMPS's value model,
// coercion, NULL and NaN logic) is the next increment; nothing in the
// broker uses this package yet.
package filter
