package config

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ampsbroker/ampsbroker/broker"
)

// ParseOptions configures Parse and Load. A nil *ParseOptions means the
// defaults documented on each field.
type ParseOptions struct {
	// Lenient turns into warnings the errors whose element can be skipped
	// or approximated without clients being misled: unknown elements,
	// unsupported elements whose absence clients notice anyway, undefined
	// variables (they become empty), replication transports, legacy
	// protocols, module libraries and message-type modules we cannot
	// emulate, implicit logon, persistent SOW topics (run in memory).
	// Unsupported elements whose absence would silently change what
	// clients see stay errors. Default false (strict): a copied AMPS file
	// that relies on a missing feature must not start as if all were well
	// unless the host opted in.
	Lenient bool

	// Vars defines ${NAME} variables; they win over the process environment
	// (the equivalent of the AMPS -DNAME=value switch).
	Vars map[string]string

	// LookupEnv reads the process environment. Default os.LookupEnv.
	LookupEnv func(name string) (string, bool)

	// FileName names the document read by Parse in diagnostics and sets
	// the built-ins AMPS_CONFIG_PATH and AMPS_CONFIG_DIRECTORY. Load sets it
	// to its path.
	FileName string

	// BaseDir resolves relative Include paths. Default: the working
	// directory. The AMPS documentation does not say how Include paths are
	// resolved, only that relative paths in general are relative to the
	// working directory, so we do the same.
	BaseDir string

	// Version is the broker version used for AMPS_VERSION and the
	// minimum-version checks; it is copied to Config.Version. Default
	// broker.DefaultVersion.
	Version string

	// MaxSize caps the bytes read for the document and all its includes.
	// Default DefaultCycleDetectionThreshold; a smaller
	// ConfigCycleDetectionThreshold in the document also applies.
	MaxSize int64

	// Authenticators and Entitlers register Go-side modules by name
	// (Go cannot load AMPS's C modules, so these take their place):
	// an Authentication or Entitlement element whose Module is one of
	// these names selects it, and a Modules/Module with that Name needs no
	// loadable Library. Built-in module names cannot be overridden. They
	// are copied to Config.Authenticators and Config.Entitlers.
	Authenticators map[string]broker.Authenticator
	// Entitlers are the Go-side entitlement modules, by name, as
	// Authenticators are for authentication.
	Entitlers map[string]broker.Entitler
}

// Load reads, expands, decodes and validates the configuration file at
// path. Problems are returned together as an *Error; warnings are in the
// returned Config's Warnings.
func Load(path string, opts *ParseOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	o := ParseOptions{}
	if opts != nil {
		o = *opts
	}
	o.FileName = path
	return parseBytes(data, &o)
}

// Parse reads an AMPSConfig document from r; see Load.
func Parse(r io.Reader, opts *ParseOptions) (*Config, error) {
	o := ParseOptions{}
	if opts != nil {
		o = *opts
	}
	data, err := io.ReadAll(io.LimitReader(r, o.maxSize()+1))
	if err != nil {
		return nil, fmt.Errorf("config: reading: %w", err)
	}
	return parseBytes(data, &o)
}

func (o *ParseOptions) maxSize() int64 {
	if o.MaxSize > 0 {
		return o.MaxSize
	}
	return DefaultCycleDetectionThreshold
}

func (o *ParseOptions) version() string {
	if o.Version != "" {
		return o.Version
	}
	return broker.DefaultVersion
}

// parser holds the state of one Parse or Load.
type parser struct {
	opts  *ParseOptions
	ds    *diags
	vars  map[string]string // built-ins
	files []string          // canonical paths of the files being read, outermost first
	names []string          // the same files as written, for cycle messages
	total int64
}

// node is one element of the expanded document.
type node struct {
	name     string
	attrs    []xml.Attr
	text     string
	file     string
	line     int
	children []*node
}

func parseBytes(data []byte, o *ParseOptions) (*Config, error) {
	ds := &diags{lenient: o.Lenient}
	p := &parser{opts: o, ds: ds, vars: map[string]string{"AMPS_VERSION": o.version()}}
	if o.FileName != "" {
		if abs, err := filepath.Abs(o.FileName); err == nil {
			p.vars["AMPS_CONFIG_PATH"] = abs
			p.vars["AMPS_CONFIG_DIRECTORY"] = filepath.Dir(abs)
			canon := abs
			if c, err := filepath.EvalSymlinks(abs); err == nil {
				canon = c
			}
			p.files = []string{canon}
			p.names = []string{o.FileName}
		}
	} else if o.BaseDir != "" {
		p.vars["AMPS_CONFIG_DIRECTORY"] = o.BaseDir
	}

	cfg := &Config{Version: o.Version, positions: map[string]pos{},
		Authenticators: o.Authenticators, Entitlers: o.Entitlers}
	p.total = int64(len(data))
	if p.total > o.maxSize() {
		ds.errorf(CodeIncludeCycle, pos{file: o.FileName}, "configuration is larger than %d bytes", o.maxSize())
	} else if roots := p.parseDoc(data, o.FileName); roots != nil {
		var root *node
		for _, r := range roots {
			if root != nil {
				ds.errorf(CodeXML, pos{file: r.file, line: r.line}, "XML syntax error: second root element <%s>", r.name)
				continue
			}
			root = r
		}
		switch {
		case root == nil:
			ds.errorf(CodeRoot, pos{file: o.FileName}, "no root element, expected <AMPSConfig>")
		case root.name != "AMPSConfig":
			ds.errorf(CodeRoot, pos{file: root.file, line: root.line}, "root element is <%s>, expected <AMPSConfig>", root.name)
		default:
			d := &decoder{ds: ds, cfg: cfg, lenient: o.Lenient}
			d.check(root, rootSchema, pos{file: root.file, line: root.line})
			d.decodeRoot(root)
			if d.cycleThreshold > 0 && p.total > d.cycleThreshold {
				ds.errorf(CodeIncludeCycle, pos{path: "ConfigCycleDetectionThreshold", file: root.file, line: root.line},
					"expanded configuration is %d bytes, more than ConfigCycleDetectionThreshold %d", p.total, d.cycleThreshold)
			}
			cfg.validate(ds)
		}
	}
	e, warnings := ds.result()
	cfg.Warnings = warnings
	if e != nil {
		return nil, e
	}
	return cfg, nil
}

// parseDoc parses one file's bytes into its top-level elements, resolving
// Includes and ${NAME} variables on the way. It returns nil after an XML
// syntax error (already recorded).
func (p *parser) parseDoc(data []byte, file string) []*node {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return in, nil
		}
		return nil, fmt.Errorf("encoding %q is not supported (use UTF-8)", label)
	}
	var (
		stack []*node
		roots []*node
	)
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 {
				p.ds.errorf(CodeXML, pos{file: file, line: line}, "XML syntax error: unexpected end of file inside <%s>", stack[len(stack)-1].name)
				return nil
			}
			return roots
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				p.ds.errorf(CodeXML, pos{file: file, line: se.Line}, "XML syntax error: %s", se.Msg)
			} else {
				p.ds.errorf(CodeXML, pos{file: file, line: line}, "XML error: %v", err)
			}
			return nil
		}
		switch t := tok.(type) {
		case xml.StartElement:
			// InputPos before Token is where the previous token (usually
			// the indentation) ended: the line of this '<'.
			n := &node{name: t.Name.Local, file: file, line: line}
			if t.Name.Space != "" {
				n.name = t.Name.Space + ":" + t.Name.Local
			}
			for _, a := range t.Attr {
				a.Value = p.expand(a.Value, pos{file: file, line: line})
				n.attrs = append(n.attrs, a)
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			n.text = p.expand(strings.TrimSpace(n.text), pos{file: file, line: n.line})
			add := []*node{n}
			if n.name == "Include" {
				add = p.include(n)
			}
			if len(stack) == 0 {
				roots = append(roots, add...)
			} else {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, add...)
			}
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		}
	}
}

// expand replaces ${NAME} tokens in element text and attribute values.
// That is where AMPS documents substitution; we substitute after XML
// tokenisation rather than in the raw text, so variables in comments are
// not expanded and a value cannot inject markup.
func (p *parser) expand(s string, at pos) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i+2:], '}')
		if j < 0 {
			// An unterminated "${" is left as written.
			b.WriteString(s)
			return b.String()
		}
		name := s[i+2 : i+2+j]
		b.WriteString(s[:i])
		s = s[i+3+j:]
		if v, ok := p.lookup(name); ok {
			b.WriteString(v)
			continue
		}
		// AMPS does not document undefined variables. We make them an
		// error in strict mode, and an empty string plus a warning in
		// lenient mode.
		if p.ds.lenient {
			p.ds.warnf(CodeEnvUndefined, at, "variable ${%s} is not defined; using an empty string", name)
		} else {
			p.ds.errorf(CodeEnvUndefined, at, "variable ${%s} is not defined", name)
		}
	}
}

// lookup resolves a variable: ParseOptions.Vars, then the environment,
// then the built-ins (AMPS_CONFIG_PATH and the like).
func (p *parser) lookup(name string) (string, bool) {
	if v, ok := p.opts.Vars[name]; ok {
		return v, true
	}
	env := p.opts.LookupEnv
	if env == nil {
		env = os.LookupEnv
	}
	if v, ok := env(name); ok {
		return v, true
	}
	v, ok := p.vars[name]
	return v, ok
}

// include reads the file an Include names and returns its top-level
// elements, which replace the Include in place. A file that includes
// itself, directly or not, is an error, as is an expansion above
// MaxSize or nesting deeper than MaxIncludeDepth.
func (p *parser) include(n *node) []*node {
	at := pos{file: n.file, line: n.line, path: "Include"}
	if len(n.children) > 0 {
		p.ds.errorf(CodeValue, at, "Include must hold a file path, not elements")
		return nil
	}
	if n.text == "" {
		p.ds.errorf(CodeIncludeMissing, at, "Include names no file")
		return nil
	}
	for _, a := range n.attrs {
		if a.Name.Local == "comment" {
			// In AMPS comment= only brackets the included text with XML
			// comments in dumped output; we do not dump, so it is only checked.
			if _, err := ParseBool(a.Value); err != nil {
				p.ds.errorf(CodeValue, at, "Include comment=%q: %v", a.Value, err)
			}
		}
	}
	resolved := n.text
	if !filepath.IsAbs(resolved) {
		base := p.opts.BaseDir
		if base == "" {
			base, _ = os.Getwd()
		}
		resolved = filepath.Join(base, resolved)
	}
	canon := resolved
	if c, err := filepath.EvalSymlinks(resolved); err == nil {
		canon = c
	}
	for i, f := range p.files {
		if f == canon {
			chain := append(append([]string{}, p.names[i:]...), n.text)
			p.ds.errorf(CodeIncludeCycle, at, "Include cycle: %s", strings.Join(chain, " -> "))
			return nil
		}
	}
	if len(p.files) >= MaxIncludeDepth {
		p.ds.errorf(CodeIncludeCycle, at, "Include %q: %v (more than %d levels)", n.text, ErrIncludeDepth, MaxIncludeDepth)
		return nil
	}
	data, err := os.ReadFile(resolved)
	if err != nil {
		reason := err
		var pe *os.PathError
		if errors.As(err, &pe) {
			reason = pe.Err
			if errors.Is(err, os.ErrNotExist) {
				reason = errors.New("no such file")
			}
		}
		p.ds.errorf(CodeIncludeMissing, at, "Include '%s' (resolved to %s): %v", n.text, resolved, reason)
		return nil
	}
	p.total += int64(len(data))
	if p.total > p.opts.maxSize() {
		p.ds.errorf(CodeIncludeCycle, at, "Include %q: expanded configuration exceeds %d bytes", n.text, p.opts.maxSize())
		return nil
	}
	p.files = append(p.files, canon)
	p.names = append(p.names, n.text)
	defer func() {
		p.files = p.files[:len(p.files)-1]
		p.names = p.names[:len(p.names)-1]
	}()
	// An included file is parsed as a fragment of zero or more top-level
	// elements, so one file can hold several Topic or Transport siblings.
	return p.parseDoc(data, resolved)
}
