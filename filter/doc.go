// Package filter implements the AMPS content filter language: the
// expressions a subscriber gives with a subscription (for example
// `/symbol = 'IBM' AND /qty > 100`) to receive only the messages for which
// the expression is TRUE.
//
// Three parts, used in this order:
//
//   - [Compile] parses a filter (with [Parse], which gives a small typed
//     syntax tree of [Node]s, or a positioned [*Error]) and checks it once
//     into an immutable [Filter], refusing regular expressions that Go's RE2
//     engine cannot run faithfully. The language is AMPS's: XPath-like
//     field identifiers (`/a/b`, `/55`, `/@attr`, `[/name with spaces]`, an
//     optional `[n]` subscript), integer, float and (raw) string literals,
//     arithmetic, comparisons, BETWEEN, IN, LIKE, BEGINS WITH, ENDS WITH,
//     IS [NOT] NULL, IS [NOT] NAN, NOT, AND, OR, and the scalar functions
//     AMPS offers to filters.
//   - An [Extractor], compiled once for the union of the paths that the
//     filters on a topic name ([Filter.Paths]) and for a message type
//     (json, fix, nvfix), reads those fields' values out of a message body
//     in one scan that stops as soon as every path is complete, into
//     reusable [Fields] without allocating.
//   - [Filter.Bind] ties a filter to the slots of an Extractor as a
//     [Matcher], a tree of closures with constants pre-converted, constant
//     sub-expressions folded, IN lists as sets and LIKE patterns compiled;
//     [Matcher.Match] evaluates it over extracted Fields without
//     allocating, with AMPS's value model (integers, unsigned integers,
//     floats, byte strings, booleans as 1/0, NULL), its comparison and
//     coercion rules, its order-dependent NULL logic, existential array
//     operators and the scalar functions.
//
// [Filter.MatchBody] does all three for one message, for tests and
// one-off use. Each rule is stated, with the decisions taken where AMPS's
// documentation is silent, next to the code that implements it.
//
// String literals are unescaped before a LIKE pattern is read as a regular
// expression, as in AMPS: '\\d' is the pattern \d, while '\d' is just d and
// '\.' is the pattern ".", which matches any character. A raw string
// (r'\d') is taken as it is.
//
// A filter's cost is bounded by its length times the message's length, so
// that a subscriber cannot stall or exhaust a broker with a small filter:
// the text functions of one evaluation may build at most the larger of
// [TextBudget] (256 KiB) and [TextPerMessageByte] (4) times the message's
// size; a text function that would go past it gives NULL, as does every
// text function after it in that evaluation. A filter whose constant
// expressions would build more than TextBudget is refused at Compile, at
// the call that goes past it. The regular expressions of a filter may
// compile to at most 8 instructions per byte of filter plus 1024, since
// RE2 runs in time proportional to program size times subject length and
// counted repetitions ({n}) multiply the program. INSTR_I is linear. An
// existential comparison of two arrays looks at no more pairs of values
// than the larger of [MaxPairs] and [PairsPerValue] times the number of
// values of both.
package filter
