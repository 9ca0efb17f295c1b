package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v3"
)

// Load reads filename and parses it with [Parse].
func Load(filename string) (*Config, error) {
	data, err := os.ReadFile(filename)
	if err != nil {
		return nil, Errors{&Error{File: filename, Err: err}}
	}
	return Parse(data, filename)
}

// Parse reads a prometheus.yml-style document (global: and scrape_configs:)
// and returns it resolved: global defaults applied, each job's defaults
// inherited from global, relative file paths joined to filename's directory.
// filename is used in error messages and for that directory; it is not read.
// An empty document is a valid config with no jobs.
//
// On any problem Parse returns nil and an [Errors] listing all of them.
// Parse does not touch the file system: files named in the config are
// checked for their form, not their existence (they may appear later).
func Parse(data []byte, filename string) (*Config, error) {
	p := newParser(filename, len(data))
	cfg := &Config{}
	if root := p.document(data); root != nil {
		p.walk(root, reflect.ValueOf(cfg).Elem(), "")
	}
	p.checkGlobal(&cfg.Global)

	firstLine := map[string]int{}
	for _, sc := range cfg.ScrapeConfigs {
		p.checkJob(sc)
		if sc.JobName != "" {
			if line, dup := firstLine[sc.JobName]; dup {
				p.addf(sc.Line, sc.path, "found multiple scrape configs with job name %q (first at line %d)", sc.JobName, line)
			} else {
				firstLine[sc.JobName] = sc.Line
			}
		}
		if err := sc.SetDefaults(cfg.Global); err != nil {
			p.list = append(p.list, err.(Errors)...)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	dir := filepath.Dir(filename)
	for _, sc := range cfg.ScrapeConfigs {
		sc.SetDirectory(dir)
	}
	return cfg, nil
}

// ParseJob reads one scrape_config document, the form a job takes in
// ZooKeeper. source names the document in errors (for example
// "zk:/shoal/jobs/node").
//
// The job comes back unresolved: per-job defaults are set (metrics_path,
// scheme, honor_timestamps, follow_redirects) but nothing is inherited, so
// ScrapeInterval, ScrapeTimeout, the limits and ScrapeProtocols keep the
// zero value when the document leaves them out. The caller must call
// [ScrapeConfig.SetDefaults] with the globals it runs under before using the
// job. Relative file paths are left as they are (there is no directory to
// join them to); call [ScrapeConfig.SetDirectory] if there is one.
//
// Everything that can be checked without the globals is checked here,
// including a timeout greater than an interval when the job sets both. On
// any problem ParseJob returns nil and an [Errors] listing all of them.
func ParseJob(data []byte, source string) (*ScrapeConfig, error) {
	p := newParser(source, len(data))
	root := p.document(data)
	if root == nil {
		if len(p.list) == 0 {
			p.addf(0, "", "empty scrape config")
		}
		return nil, p.err()
	}
	sc := DefaultScrapeConfig()
	sc.Line = root.Line
	sc.source = source
	sc.path = "scrape_config"
	if name, ok := peekJobName(root); ok {
		sc.path = fmt.Sprintf("job %q", name)
	}
	p.walk(root, reflect.ValueOf(&sc).Elem(), sc.path)
	sc.timeoutLine = p.keyLine[&sc.ScrapeTimeout]
	p.checkJob(&sc)
	if sc.ScrapeInterval != 0 && sc.ScrapeTimeout > sc.ScrapeInterval {
		p.add(sc.timeoutLine, joinPath(sc.path, "scrape_timeout"), errTimeout(sc.JobName))
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// parser walks one document. It is used once and not shared.
type parser struct {
	errs
	// keyLine and valNode record, for each struct field the walk filled, the
	// line of its key and its value node, keyed by a pointer to the field
	// (for list entries, by the entry pointer). Validation uses them to put
	// a line on problems found after decoding. Keys stay valid because every
	// struct that holds recorded fields is heap-allocated and never copied
	// during the walk.
	keyLine map[any]int
	valNode map[any]*yaml.Node
	// targetLines[g][i] is the line of g.Targets[i].
	targetLines map[*targetgroup.Group][]int
	// broken holds list entries that had a decoding error; validating them
	// would only add confusing follow-up errors (an unknown relabel action
	// leaves the default "replace", which then lacks a target_label).
	broken map[any]bool

	// budget bounds the work alias expansion can cause ("billion laughs"):
	// each alias the walk follows and each value it decodes costs its
	// expanded node count. A document without aliases never runs out.
	budget     int
	sizes      map[*yaml.Node]int
	overBudget bool
}

func newParser(file string, size int) *parser {
	return &parser{
		errs:        errs{file: file},
		keyLine:     map[any]int{},
		valNode:     map[any]*yaml.Node{},
		targetLines: map[*targetgroup.Group][]int{},
		broken:      map[any]bool{},
		budget:      2*size + 1<<20,
		sizes:       map[*yaml.Node]int{},
	}
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// splitLine splits yaml's "line N: message" into N and message.
func splitLine(msg string) (int, string) {
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// document parses data and returns its root node, or nil if the document is
// empty or unreadable (the latter recorded as an error).
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			line, msg := splitLine(err.Error())
			p.add(line, "", errors.New(msg))
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := next.Line
		if err != nil {
			line, _ = splitLine(err.Error())
		}
		p.addf(line, "", "more than one YAML document; shoal reads exactly one")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := p.deref(doc.Content[0])
	if root == nil || isNull(root) {
		return nil
	}
	return root
}

// expandedSize is the number of nodes n stands for once aliases are
// expanded, saturating at a value above any budget. A recursive alias counts
// as too large.
func (p *parser) expandedSize(n *yaml.Node) int {
	const inProgress, tooLarge = -1, 1 << 40
	if s, ok := p.sizes[n]; ok {
		if s == inProgress {
			return tooLarge
		}
		return s
	}
	p.sizes[n] = inProgress
	s := 1
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		s = p.expandedSize(n.Alias)
	}
	for _, c := range n.Content {
		s = min(s+p.expandedSize(c), tooLarge)
	}
	p.sizes[n] = s
	return s
}

// spend charges the expansion of n to the budget and reports whether the
// walk may go on.
func (p *parser) spend(n *yaml.Node) bool {
	if p.overBudget {
		return false
	}
	p.budget -= p.expandedSize(n)
	if p.budget < 0 {
		p.overBudget = true
		p.addf(n.Line, "", "YAML aliases expand to a document that is too large or recursive")
		return false
	}
	return true
}

// deref follows aliases, charging each expansion. It returns nil once the
// budget is spent.
func (p *parser) deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		if !p.spend(n) {
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node's kind for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if v := []rune(n.Value); len(v) > 40 {
			return fmt.Sprintf("%q…", string(v[:40]))
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

type keyValue struct{ k, v *yaml.Node }

// pairs lists the entries of mapping n, with YAML merge keys ("<<: *x")
// expanded and explicit keys winning over merged ones. A key that appears
// twice, or that is not a plain scalar, is an error and left out.
func (p *parser) pairs(n *yaml.Node, path string) []keyValue {
	var out, merged []keyValue
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			merged = append(merged, p.mergePairs(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.addf(k.Line, path, "mapping keys must be strings, got %s", describe(k))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			p.addf(k.Line, path, "field %q already set at line %d", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, keyValue{k, v})
	}
	for _, kv := range merged {
		if _, ok := seen[kv.k.Value]; !ok {
			seen[kv.k.Value] = kv.k.Line
			out = append(out, kv)
		}
	}
	return out
}

// mergePairs returns the entries a merge key brings in: one mapping, or a
// list of mappings where earlier ones win.
func (p *parser) mergePairs(v *yaml.Node, path string) []keyValue {
	v = p.deref(v)
	if v == nil {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return p.pairs(v, path)
	case yaml.SequenceNode:
		var out []keyValue
		seen := map[string]bool{}
		for _, m := range v.Content {
			m = p.deref(m)
			if m == nil {
				continue
			}
			if m.Kind != yaml.MappingNode {
				p.addf(m.Line, path, "merge key \"<<\" needs mappings, got %s", describe(m))
				continue
			}
			for _, kv := range p.pairs(m, path) {
				if !seen[kv.k.Value] {
					seen[kv.k.Value] = true
					out = append(out, kv)
				}
			}
		}
		return out
	}
	p.addf(v.Line, path, "merge key \"<<\" needs a mapping, got %s", describe(v))
	return nil
}

// peekJobName returns the job_name of a scrape_config mapping, so messages
// about keys that come before job_name can still name the job.
func peekJobName(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.MappingNode {
		return "", false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Value == "job_name" && v.Kind == yaml.ScalarNode && !isNull(v) {
			return v.Value, true
		}
	}
	return "", false
}

var (
	scrapeConfigType = reflect.TypeFor[ScrapeConfig]()
	fileSDType       = reflect.TypeFor[FileSDConfig]()
	dnsSDType        = reflect.TypeFor[DNSSDConfig]()
	consulSDType     = reflect.TypeFor[ConsulSDConfig]()
	relabelType      = reflect.TypeFor[relabel.Config]()
	groupType        = reflect.TypeFor[targetgroup.Group]()
	base2BytesType   = reflect.TypeFor[units.Base2Bytes]()
)

// newElem returns a pointer to a new list entry of type t holding the
// defaults a missing key leaves in place.
func newElem(t reflect.Type) reflect.Value {
	switch t {
	case scrapeConfigType:
		sc := DefaultScrapeConfig()
		return reflect.ValueOf(&sc)
	case fileSDType:
		return reflect.ValueOf(&FileSDConfig{RefreshInterval: model.Duration(DefaultFileSDRefreshInterval)})
	case dnsSDType:
		return reflect.ValueOf(&DNSSDConfig{RefreshInterval: model.Duration(DefaultDNSSDRefreshInterval), Type: "SRV"})
	case consulSDType:
		c := DefaultConsulSDConfig()
		return reflect.ValueOf(&c)
	case relabelType:
		rc := relabel.DefaultRelabelConfig
		return reflect.ValueOf(&rc)
	}
	return reflect.New(t)
}

// walk decodes n into v, which must be addressable; path is where v is. A
// null value leaves v as it was (so `key:` with no value means the default,
// like leaving the key out).
func (p *parser) walk(n *yaml.Node, v reflect.Value, path string) {
	n = p.deref(n)
	if n == nil || isNull(n) {
		return
	}
	t := v.Type()
	switch {
	case t == groupType:
		p.walkGroup(n, v.Addr().Interface().(*targetgroup.Group), path)
	case t == base2BytesType:
		p.decodeSize(n, v.Addr().Interface().(*units.Base2Bytes), path)
	case t.Kind() == reflect.Struct && walkable(t):
		p.walkStruct(n, v, path)
	case t.Kind() == reflect.Pointer && (walkable(t.Elem()) || t.Elem() == groupType):
		e := newElem(t.Elem())
		p.walk(n, e.Elem(), path)
		v.Set(e)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Pointer &&
		(walkable(t.Elem().Elem()) || t.Elem().Elem() == groupType):
		p.walkList(n, v, path)
	default:
		p.decode(n, v.Addr().Interface(), path)
	}
}

// walkStruct decodes mapping n into struct v key by key.
func (p *parser) walkStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		p.addf(n.Line, path, "expected a mapping, got %s", describe(n))
		return
	}
	t := v.Type()
	fi := fieldsOf(t)
	for _, kv := range p.pairs(n, path) {
		key := kv.k.Value
		idx, ok := fi.byKey[key]
		if !ok {
			if reason, known := unsupportedKeys[t][key]; known {
				if reason != "" {
					reason = " (" + reason + ")"
				}
				p.addf(kv.k.Line, path, "field %q is not supported by shoal%s", key, reason)
			} else {
				p.addf(kv.k.Line, path, "unknown field %q%s", key, unknownFieldHint(t, key))
			}
			continue
		}
		f := v.Field(idx)
		ptr := f.Addr().Interface()
		p.keyLine[ptr] = kv.k.Line
		p.valNode[ptr] = kv.v
		p.walk(kv.v, f, joinPath(path, key))
	}
}

// walkList decodes sequence n into v, a slice of pointers to structs the
// walker knows. Null entries are errors, as in Prometheus.
func (p *parser) walkList(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		p.addf(n.Line, path, "expected a list, got %s", describe(n))
		return
	}
	field := path[strings.LastIndexByte(path, '.')+1:]
	elemType := v.Type().Elem().Elem()
	for i, item := range n.Content {
		item = p.deref(item)
		if item == nil {
			continue
		}
		ipath := fmt.Sprintf("%s[%d]", path, i)
		if elemType == scrapeConfigType {
			if name, ok := peekJobName(item); ok {
				ipath += fmt.Sprintf(" (job %q)", name)
			}
		}
		if isNull(item) {
			p.addf(item.Line, ipath, "empty or null section in %s", field)
			continue
		}
		e := newElem(elemType)
		p.keyLine[e.Interface()] = item.Line
		before := len(p.list)
		p.walk(item, e.Elem(), ipath)
		if len(p.list) > before {
			p.broken[e.Interface()] = true
		}
		if sc, ok := e.Interface().(*ScrapeConfig); ok {
			sc.Line = item.Line
			sc.source = p.file
			sc.path = ipath
			sc.timeoutLine = p.keyLine[&sc.ScrapeTimeout]
		}
		v.Set(reflect.Append(v, e))
	}
}

// groupKeys describes a static_configs entry for suggestions; the real type,
// targetgroup.Group, has no yaml tags.
type groupKeys struct {
	Targets []string          `yaml:"targets"`
	Labels  map[string]string `yaml:"labels"`
}

// walkGroup decodes a static_configs entry, checking each target and label
// on its own line. Source is set by checkJob.
func (p *parser) walkGroup(n *yaml.Node, g *targetgroup.Group, path string) {
	if n.Kind != yaml.MappingNode {
		p.addf(n.Line, path, "expected a mapping, got %s", describe(n))
		return
	}
	for _, kv := range p.pairs(n, path) {
		val := p.deref(kv.v)
		if val == nil || isNull(val) {
			continue
		}
		switch key := kv.k.Value; key {
		case "targets":
			tpath := joinPath(path, key)
			if val.Kind != yaml.SequenceNode {
				p.addf(val.Line, tpath, "expected a list, got %s", describe(val))
				continue
			}
			for i, item := range val.Content {
				item = p.deref(item)
				if item == nil {
					continue
				}
				ipath := fmt.Sprintf("%s[%d]", tpath, i)
				if item.Kind != yaml.ScalarNode || isNull(item) || item.Value == "" {
					p.addf(item.Line, ipath, "a target must be a non-empty \"host:port\" string, got %s", describe(item))
					continue
				}
				g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(item.Value)})
				p.targetLines[g] = append(p.targetLines[g], item.Line)
			}
		case "labels":
			g.Labels = p.labelMap(val, joinPath(path, key))
		default:
			p.addf(kv.k.Line, path, "unknown field %q%s", key, unknownFieldHint(reflect.TypeFor[groupKeys](), key))
		}
	}
}

// labelMap decodes a mapping of label names to values, checking each pair
// as Prometheus does with UTF-8 names (names valid UTF-8 and non-empty,
// values valid UTF-8).
func (p *parser) labelMap(n *yaml.Node, path string) model.LabelSet {
	if n.Kind != yaml.MappingNode {
		p.addf(n.Line, path, "expected a mapping of label names to values, got %s", describe(n))
		return nil
	}
	ls := model.LabelSet{}
	for _, kv := range p.pairs(n, path) {
		name := kv.k.Value
		if !model.UTF8Validation.IsValidLabelName(name) {
			p.addf(kv.k.Line, path, "%q is not a valid label name", name)
			continue
		}
		val := p.deref(kv.v)
		if val == nil {
			continue
		}
		if val.Kind != yaml.ScalarNode {
			p.addf(val.Line, joinPath(path, name), "a label value must be a string, got %s", describe(val))
			continue
		}
		value := val.Value
		if isNull(val) {
			value = ""
		}
		if !utf8.ValidString(value) {
			p.addf(val.Line, joinPath(path, name), "%q is not a valid label value", value)
			continue
		}
		ls[model.LabelName(name)] = model.LabelValue(value)
	}
	return ls
}

// decodeSize decodes a Prometheus <size> ("512MB"; a unit is required).
func (p *parser) decodeSize(n *yaml.Node, out *units.Base2Bytes, path string) {
	if n.Kind != yaml.ScalarNode {
		p.addf(n.Line, path, "expected a size such as \"10MB\", got %s", describe(n))
		return
	}
	b, err := units.ParseBase2Bytes(n.Value)
	if err != nil {
		p.addf(n.Line, path, "invalid size %q: a number and a unit (B, KB, MB, GB, TB, PB, EB) are required, e.g. \"10MB\"", n.Value)
		return
	}
	if b < 0 {
		p.addf(n.Line, path, "size %q must not be negative", n.Value)
		return
	}
	*out = b
}

// decode decodes a leaf value with yaml's own decoder.
func (p *parser) decode(n *yaml.Node, out any, path string) {
	if !p.spend(n) {
		return
	}
	err := n.Decode(out)
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, msg := range te.Errors {
			line, msg := splitLine(msg)
			if line == 0 {
				line = n.Line
			}
			p.add(line, path, errors.New(msg))
		}
		return
	}
	p.add(n.Line, path, err)
}
