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
// Evaluation against messages is not part of this increment.
package filter
