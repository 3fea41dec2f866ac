package declarative

import (
	"slices"
	"strconv"
	"strings"
)

// ErrorNode is one level of Kong's nested error table: a leaf holds a
// Message; an inner node holds named Fields and/or numbered Entries.
// Entries are 1-based, as in Lua, so printed positions match Kong's.
type ErrorNode struct {
	Message string
	Fields  map[string]*ErrorNode
	Entries map[int]*ErrorNode
}

func leaf(msg string) *ErrorNode { return &ErrorNode{Message: msg} }

func (n *ErrorNode) empty() bool {
	return n == nil || n.Message == "" && len(n.Fields) == 0 && len(n.Entries) == 0
}

// field returns the child node called name, creating it if needed.
func (n *ErrorNode) field(name string) *ErrorNode {
	if n.Fields == nil {
		n.Fields = map[string]*ErrorNode{}
	}
	c := n.Fields[name]
	if c == nil {
		c = &ErrorNode{}
		n.Fields[name] = c
	}
	return c
}

// entry returns the child node at position i, creating it if needed.
func (n *ErrorNode) entry(i int) *ErrorNode {
	if n.Entries == nil {
		n.Entries = map[int]*ErrorNode{}
	}
	c := n.Entries[i]
	if c == nil {
		c = &ErrorNode{}
		n.Entries[i] = c
	}
	return c
}

func (n *ErrorNode) set(name string, c *ErrorNode) {
	if c.empty() {
		return
	}
	if n.Fields == nil {
		n.Fields = map[string]*ErrorNode{}
	}
	n.Fields[name] = c
}

func (n *ErrorNode) setMsg(name, msg string) { n.set(name, leaf(msg)) }

// appendMsg adds msg to the list held under name (like "@entity").
func (n *ErrorNode) appendMsg(name, msg string) {
	l := n.field(name)
	l.Message = ""
	l.entry(len(l.Entries) + 1).Message = msg
}

func (n *ErrorNode) entityError(msg string) { n.appendMsg("@entity", msg) }

func (n *ErrorNode) has(name string) bool {
	_, ok := n.Fields[name]
	return ok
}

// sortedKeys lists entries first, ascending, then field names sorted: the
// order Lua's pairs gives for array parts, made deterministic for the rest.
func (n *ErrorNode) sortedKeys() ([]int, []string) {
	ints := make([]int, 0, len(n.Entries))
	for i := range n.Entries {
		ints = append(ints, i)
	}
	slices.Sort(ints)
	names := make([]string, 0, len(n.Fields))
	for k := range n.Fields {
		names = append(names, k)
	}
	slices.Sort(names)
	return ints, names
}

// pretty renders the node as kong/db/declarative/init.lua pretty_print_error.
func (n *ErrorNode) pretty(item, indent string, out *[]string) {
	ints, names := n.sortedKeys()
	line := func(key string, c *ErrorNode, childItem string) {
		if c.Message != "" || (len(c.Fields) == 0 && len(c.Entries) == 0) {
			*out = append(*out, indent+key+": "+c.Message)
			return
		}
		*out = append(*out, indent+key+":")
		c.pretty(childItem, indent+"  ", out)
	}
	for _, i := range ints {
		s := strconv.Itoa(i)
		line("- in entry "+s+" of '"+item+"'", n.Entries[i], s)
	}
	for _, k := range names {
		line("in '"+k+"'", n.Fields[k], k)
	}
}

// String renders the node as Kong prints it after "Failed parsing:".
func (n *ErrorNode) String() string {
	var out []string
	n.pretty("", "", &out)
	return strings.Join(out, "\n")
}

// FlatError is one entity's errors, shaped like an entry of Kong's
// flattened_errors (kong/db/errors.lua declarative_config_flattened).
type FlatError struct {
	EntityType string       `json:"entity_type"` // singular: "service", "route", ...
	EntityName string       `json:"entity_name,omitempty"`
	EntityID   string       `json:"entity_id,omitempty"`
	EntityTags []string     `json:"entity_tags,omitempty"`
	Errors     []FieldError `json:"errors"`
}

// FieldError is one message; Type is "entity" (an "@entity" check) or
// "field", with Field the dotted path inside the entity ("snis.1",
// "healthchecks.active.timeout"), positions 1-based as in Kong.
type FieldError struct {
	Type    string `json:"type"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// categorize lists the messages of an entity node as Kong's
// categorize_errors does.
func categorize(n *ErrorNode, ns string, out []FieldError) []FieldError {
	join := func(k string) string {
		if ns == "" {
			return k
		}
		return ns + "." + k
	}
	add := func(key string, c *ErrorNode) {
		switch {
		case key == "@entity":
			for _, m := range flatMessages(c) {
				out = append(out, FieldError{Type: "entity", Message: m})
			}
		case c.Message != "":
			out = append(out, FieldError{Type: "field", Field: join(key), Message: c.Message})
		default:
			out = categorize(c, join(key), out)
		}
	}
	ints, names := n.sortedKeys()
	for _, i := range ints {
		add(strconv.Itoa(i), n.Entries[i])
	}
	for _, k := range names {
		add(k, n.Fields[k])
	}
	return out
}

func flatMessages(n *ErrorNode) []string {
	if n.Message != "" {
		return []string{n.Message}
	}
	var out []string
	ints, _ := n.sortedKeys()
	for _, i := range ints {
		out = append(out, flatMessages(n.Entries[i])...)
	}
	return out
}

// Error is a declarative configuration that could not be loaded. Either
// Message is set (the file could not be read or decoded) or Tree holds the
// validation errors, nested like the input (entity -> entry -> field), with
// Flattened listing them per entity.
type Error struct {
	Message   string
	Tree      *ErrorNode
	Flattened []FlatError
}

// Error renders what `kong config parse` prints after "Failed parsing:".
func (e *Error) Error() string {
	if e.Tree == nil {
		return e.Message
	}
	return e.Tree.String()
}

func singular(s string) string { return strings.TrimSuffix(s, "s") }

// setErr puts a schema error (a message or nested errors, see
// schema.Errors) under name; nil is no error.
func (n *ErrorNode) setErr(name string, err any) {
	if err != nil {
		n.set(name, errorTree(err))
	}
}

func setEntry(m map[int]*ErrorNode, i int, n *ErrorNode) map[int]*ErrorNode {
	if m == nil {
		m = map[int]*ErrorNode{}
	}
	m[i] = n
	return m
}

// errorTree converts a Lua-style nested error table (runtime/schema's
// Errors, a plugin's config errors) into an ErrorNode; digit keys become
// entries.
func errorTree(v any) *ErrorNode {
	switch x := v.(type) {
	case string:
		return leaf(x)
	case []any:
		n := &ErrorNode{}
		for i, e := range x {
			n.Entries = setEntry(n.Entries, i+1, errorTree(e))
		}
		return n
	case []string:
		n := &ErrorNode{}
		for i, e := range x {
			n.Entries = setEntry(n.Entries, i+1, leaf(e))
		}
		return n
	case map[string]any:
		n := &ErrorNode{}
		for k, e := range x {
			if i, err := strconv.Atoi(k); err == nil && i > 0 && strconv.Itoa(i) == k {
				n.Entries = setEntry(n.Entries, i, errorTree(e))
			} else {
				n.set(k, errorTree(e))
			}
		}
		return n
	}
	return leaf(luaString(v))
}
