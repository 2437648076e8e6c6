package manifests

import (
	"bytes"
	"slices"
)

// fastYAMLToJSON converts the plain shape most manifests have (block
// mappings and sequences, one-line flow collections, scalars that are
// unambiguous strings, decimal integers, true/false/null) to exactly the
// JSON yaml.YAMLToJSONStrict gives (keys sorted, strings escaped alike),
// without its generic decoding. It returns false on anything else (anchors,
// tags, block or multi-line scalars, comments after content, scalars that
// YAML could read as another type, duplicate keys, malformed input): the
// caller then converts with sigs.k8s.io/yaml, which also words any error.
func fastYAMLToJSON(doc []byte) ([]byte, bool) {
	for _, c := range doc {
		if (c < 0x20 || c > 0x7e) && c != '\n' {
			return nil, false // tabs, CR, control characters, non-ASCII
		}
	}
	p := &fastParser{}
	for line := range bytes.Lines(doc) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		trimmed := bytes.TrimLeft(line, " ")
		if len(trimmed) == 0 || trimmed[0] == '#' {
			continue
		}
		p.lines = append(p.lines, fastLine{indent: len(line) - len(trimmed), text: trimmed})
	}
	if len(p.lines) == 0 {
		return nil, false // empty or comments only: the slow path says null
	}
	out, ok := p.node(p.lines[0].indent)
	if !ok || p.pos != len(p.lines) {
		return nil, false
	}
	return out, true
}

type fastLine struct {
	indent int
	text   []byte
}

type fastParser struct {
	lines []fastLine
	pos   int
}

// node parses the block node starting at the current line, at column col.
func (p *fastParser) node(col int) ([]byte, bool) {
	l := p.lines[p.pos]
	if l.indent != col {
		return nil, false
	}
	if isSeqItem(l.text) {
		return p.sequence(col)
	}
	return p.mapping(col, nil)
}

func isSeqItem(text []byte) bool {
	return text[0] == '-' && (len(text) == 1 || text[1] == ' ')
}

// mapping parses a block mapping at column col. first, if set, is its first
// line's text (the rest of a "- key: value" sequence item line).
func (p *fastParser) mapping(col int, first []byte) ([]byte, bool) {
	var entries []jsonEntry
	for {
		var text []byte
		switch {
		case first != nil: // its line is consumed already
			text, first = first, nil
		case p.pos < len(p.lines) && p.lines[p.pos].indent == col && !isSeqItem(p.lines[p.pos].text):
			text = p.lines[p.pos].text
			p.pos++
		default:
			return sortedObject(entries)
		}
		key, rest, ok := splitKey(text)
		if !ok {
			return nil, false
		}
		var value []byte
		switch {
		case len(rest) > 0:
			if value, ok = inlineValue(rest); !ok {
				return nil, false
			}
		case p.pos < len(p.lines) && p.lines[p.pos].indent > col:
			if value, ok = p.node(p.lines[p.pos].indent); !ok {
				return nil, false
			}
		case p.pos < len(p.lines) && p.lines[p.pos].indent == col && isSeqItem(p.lines[p.pos].text):
			if value, ok = p.sequence(col); !ok { // a sequence may sit at its key's column
				return nil, false
			}
		default:
			value = []byte("null")
		}
		if p.pos < len(p.lines) && p.lines[p.pos].indent > col {
			return nil, false // a continuation line (multi-line scalar)
		}
		if entries, ok = addEntry(entries, key, value); !ok {
			return nil, false // duplicate key: the slow path reports it
		}
	}
}

// sequence parses a block sequence at column col.
func (p *fastParser) sequence(col int) ([]byte, bool) {
	out := []byte{'['}
	for n := 0; p.pos < len(p.lines) && p.lines[p.pos].indent == col && isSeqItem(p.lines[p.pos].text); n++ {
		text := p.lines[p.pos].text
		p.pos++
		var item []byte
		ok := true
		rest := bytes.TrimLeft(text[1:], " ")
		switch {
		case len(rest) == 0:
			if p.pos >= len(p.lines) || p.lines[p.pos].indent <= col {
				return nil, false // empty item
			}
			item, ok = p.node(p.lines[p.pos].indent)
		case rest[0] == '-' || rest[0] == '#':
			return nil, false
		case isKeyLine(rest):
			item, ok = p.mapping(col+len(text)-len(rest), rest)
		default:
			item, ok = inlineValue(rest)
			if ok && p.pos < len(p.lines) && p.lines[p.pos].indent > col {
				ok = false
			}
		}
		if !ok {
			return nil, false
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, item...)
	}
	return append(out, ']'), true
}

// isKeyLine reports whether text starts a mapping entry ("key:" or "key: ...").
func isKeyLine(text []byte) bool {
	_, _, ok := splitKey(text)
	return ok
}

// splitKey splits "key: rest" (or "key:") into the key as a JSON string and
// the rest.
func splitKey(text []byte) (key, rest []byte, ok bool) {
	var raw []byte
	switch text[0] {
	case '"', '\'':
		end := bytes.IndexByte(text[1:], text[0])
		if end < 0 {
			return nil, nil, false
		}
		raw, rest = text[:end+2], text[end+2:]
	default:
		i := bytes.IndexByte(text, ':')
		if i <= 0 {
			return nil, nil, false
		}
		raw, rest = text[:i], text[i:]
	}
	if len(rest) == 0 || rest[0] != ':' || len(rest) > 1 && rest[1] != ' ' {
		return nil, nil, false
	}
	key, ok = scalar(raw, true)
	if !ok || key[0] != '"' || len(raw) > maxKey {
		return nil, nil, false
	}
	return key, bytes.TrimLeft(rest[1:], " "), true
}

// inlineValue converts the value after "key: " or "- ": a scalar or a
// one-line flow collection.
func inlineValue(text []byte) ([]byte, bool) {
	text = bytes.TrimRight(text, " ")
	if text[0] == '[' || text[0] == '{' {
		f := flowParser{text: text}
		out, ok := f.value()
		return out, ok && f.pos == len(text)
	}
	return scalar(text, false)
}

// flowParser parses one line of flow style ([a, b], {k: v}).
type flowParser struct {
	text []byte
	pos  int
}

func (f *flowParser) skipSpaces() {
	for f.pos < len(f.text) && f.text[f.pos] == ' ' {
		f.pos++
	}
}

func (f *flowParser) value() ([]byte, bool) {
	f.skipSpaces()
	if f.pos >= len(f.text) {
		return nil, false
	}
	switch f.text[f.pos] {
	case '[', '{':
		return f.collection()
	}
	end := f.pos
	if q := f.text[f.pos]; q == '"' || q == '\'' {
		i := bytes.IndexByte(f.text[f.pos+1:], q)
		if i < 0 {
			return nil, false
		}
		end += i + 2
	} else {
		for end < len(f.text) && bytes.IndexByte([]byte(",]}:"), f.text[end]) < 0 {
			end++
		}
	}
	raw := bytes.TrimRight(f.text[f.pos:end], " ")
	f.pos = end
	if len(raw) == 0 {
		return nil, false
	}
	return scalar(raw, false)
}

// collection parses a flow sequence or mapping at f.pos.
func (f *flowParser) collection() ([]byte, bool) {
	isMap := f.text[f.pos] == '{'
	closer := byte(']')
	if isMap {
		closer = '}'
	}
	f.pos++
	var items [][]byte
	var entries []jsonEntry
	for {
		f.skipSpaces()
		if f.pos < len(f.text) && f.text[f.pos] == closer && len(items)+len(entries) == 0 {
			break
		}
		v, ok := f.value()
		if !ok {
			return nil, false
		}
		f.skipSpaces()
		if isMap {
			if f.pos+1 >= len(f.text) || f.text[f.pos] != ':' || f.text[f.pos+1] != ' ' {
				return nil, false
			}
			f.pos++
			val, ok := f.value()
			if !ok || v[0] != '"' || len(v) > maxKey {
				return nil, false
			}
			if entries, ok = addEntry(entries, v, val); !ok {
				return nil, false
			}
			f.skipSpaces()
		} else {
			items = append(items, v)
		}
		if f.pos >= len(f.text) {
			return nil, false
		}
		if f.text[f.pos] == closer {
			break
		}
		if f.text[f.pos] != ',' {
			return nil, false
		}
		f.pos++
	}
	f.pos++
	if isMap {
		return sortedObject(entries)
	}
	return append(append([]byte{'['}, bytes.Join(items, []byte{','})...), ']'), true
}

// maxKey bounds the keys taken here: YAML limits an implicit key to 1024
// characters, and the slow path words the error.
const maxKey = 1000

// jsonEntry is a mapping entry: a JSON string key (without escapes) and a
// JSON value.
type jsonEntry struct{ key, value []byte }

// addEntry appends an entry unless its key is there already.
func addEntry(entries []jsonEntry, key, value []byte) ([]jsonEntry, bool) {
	for _, e := range entries {
		if bytes.Equal(e.key, key) {
			return nil, false
		}
	}
	return append(entries, jsonEntry{key, value}), true
}

// sortedObject renders a JSON object with its keys sorted as encoding/json
// sorts a map's.
func sortedObject(entries []jsonEntry) ([]byte, bool) {
	slices.SortFunc(entries, func(a, b jsonEntry) int { return bytes.Compare(a.key[1:len(a.key)-1], b.key[1:len(b.key)-1]) })
	out := []byte{'{'}
	for i, e := range entries {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(append(append(out, e.key...), ':'), e.value...)
	}
	return append(out, '}'), true
}

// scalar converts a scalar the way YAML 1.1 (go.yaml.in/yaml/v2) and
// encoding/json would, or returns false when it might read as anything but
// a plain string, a decimal integer, a boolean or null. A key (isKey) must
// be a string.
func scalar(raw []byte, isKey bool) ([]byte, bool) {
	switch raw[0] {
	case '"', '\'':
		q := raw[0]
		if len(raw) < 2 || raw[len(raw)-1] != q {
			return nil, false
		}
		return jsonString(raw[1:len(raw)-1], q)
	}
	if !isKey {
		switch string(raw) {
		case "true", "True", "TRUE":
			return []byte("true"), true
		case "false", "False", "FALSE":
			return []byte("false"), true
		case "null", "Null", "NULL", "~":
			return []byte("null"), true
		}
	}
	c := raw[0]
	switch {
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '/':
		if yamlWords[string(raw)] {
			return nil, false
		}
		for _, c := range raw {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
				return nil, false
			}
		}
		return jsonString(raw, 0)
	case c >= '0' && c <= '9' && !isKey:
		dots := 0
		for _, c := range raw {
			switch {
			case c == '.':
				dots++
			case c < '0' || c > '9':
				return nil, false
			}
		}
		switch {
		case dots >= 2: // an address or version: neither number nor timestamp
			return jsonString(raw, 0)
		case dots == 0 && (len(raw) == 1 || raw[0] != '0') && len(raw) <= 18:
			return raw, true
		}
	}
	return nil, false
}

// yamlWords are the plain scalars YAML 1.1 reads as booleans (other than
// true and false) or as a merge key.
var yamlWords = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"n": true, "N": true, "no": true, "No": true, "NO": true, "off": true, "Off": true, "OFF": true,
	"true": true, "True": true, "TRUE": true, "false": true, "False": true, "FALSE": true,
	"null": true, "Null": true, "NULL": true,
}

// jsonString quotes s (the inside of a quoted scalar with quote q, or a
// plain scalar with q 0) as encoding/json would, or returns false for
// escapes, control, non-ASCII and HTML-escaped characters.
func jsonString(s []byte, q byte) ([]byte, bool) {
	out := make([]byte, 0, len(s)+2)
	out = append(out, '"')
	for _, c := range s {
		switch {
		case c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&':
			return nil, false
		case c == q || q == '"' && c == '\\':
			return nil, false // an escape or '' in a quoted scalar
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		default:
			out = append(out, c)
		}
	}
	return append(out, '"'), true
}
