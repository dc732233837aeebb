package pipelines

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is an error in a pipeline file, at a line and column.
type Problem struct {
	File string
	Pos
	Msg string
}

// Error returns "file:line:col: message".
func (p Problem) Error() string { return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg) }

// Problems are every error a check found, in the order of the files and of
// the lines in them.
type Problems []Problem

// Error returns the problems, one a line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders the problems by file, line and column, without repeats.
func (ps Problems) sort() Problems {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return slices.Compact(ps)
}

// decoder turns a YAML node tree into the values of spec.go, collecting
// every problem with its position rather than stopping at the first:
// unknown keys (with the closest known one), values of the wrong shape,
// missing required fields and values outside an enum.
type decoder struct {
	file string
	errs Problems
}

// errorf records a problem at node n.
func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, Problem{File: d.file, Pos: Pos{n.Line, n.Column}, Msg: fmt.Sprintf(format, args...)})
}

// decodeFile parses one YAML document of file into v (a pointer).
func decodeFile(file string, data []byte, v any) Problems {
	d := &decoder{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// A syntax error: "yaml: line 3: mapping values are not allowed".
		line, msg := 1, err.Error()
		if _, after, ok := strings.Cut(msg, "line "); ok {
			if n, rest, ok := strings.Cut(after, ":"); ok {
				if l, err := strconv.Atoi(n); err == nil {
					line, msg = l, strings.TrimSpace(rest)
				}
			}
		}
		return Problems{{File: file, Pos: Pos{line, 1}, Msg: strings.TrimPrefix(msg, "yaml: ")}}
	}
	if len(doc.Content) == 0 {
		return Problems{{File: file, Pos: Pos{1, 1}, Msg: "empty file"}}
	}
	d.decode(doc.Content[0], reflect.ValueOf(v).Elem())
	return d.errs
}

// posType is the type of the Pos fields, which the decoder fills in.
var posType = reflect.TypeFor[Pos]()

// decode decodes n into v.
func (d *decoder) decode(n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && v.Kind() == reflect.Pointer {
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if n.Kind == yaml.ScalarNode && d.shorthand(n, v) {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if strings.HasPrefix(v.Type().Name(), "Ordered[") {
			d.ordered(n, v)
			return
		}
		d.object(n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "got %s, want a list", shape(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "got %s, want a mapping", shape(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(n.Content[i+1], e)
			m.SetMapIndex(reflect.ValueOf(n.Content[i].Value), e)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			d.errorf(n, "got %s, want a string", shape(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n, "got %s, want an integer", shape(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || err != nil || n.Tag == "!!str" {
			d.errorf(n, "got %s, want a number", shape(n))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errorf(n, "got %s, want true or false", shape(n))
			return
		}
		v.SetBool(n.Value == "true")
	}
}

// shorthand decodes the short forms: a column as its type, a schedule as
// its mode, not_empty as a bool. It reports whether it did.
func (d *decoder) shorthand(n *yaml.Node, v reflect.Value) bool {
	pos := Pos{n.Line, n.Column}
	switch x := v.Addr().Interface().(type) {
	case *ColumnSpec:
		x.Pos, x.Type = pos, n.Value
		d.enum(n, "type", x.Type, typeEnum)
	case *Schedule:
		x.Pos, x.Mode = pos, n.Value
		d.enum(n, "schedule", x.Mode, []string{"manual", "monthly", "after_inputs"})
	case *NotEmpty:
		if n.Tag != "!!bool" {
			d.errorf(n, "got %s, want true, false or {severity: warn}", shape(n))
		}
		x.Pos, x.Off = pos, n.Value == "false"
	default:
		return false
	}
	return true
}

// typeEnum are the column types.
var typeEnum = []string{"bigint", "integer", "smallint", "numeric", "double precision", "real", "text", "date", "timestamp", "timestamptz", "boolean"}

// enum records a problem when value is not one of allowed.
func (d *decoder) enum(n *yaml.Node, what, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		d.errorf(n, "%s %q is not one of %s%s", what, value, strings.Join(allowed, ", "), didYouMean(value, allowed))
	}
}

// object decodes a mapping into the struct v, field by yaml tag.
func (d *decoder) object(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "got %s, want a mapping", shape(n))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var known []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type == posType {
			v.Field(i).Set(reflect.ValueOf(Pos{n.Line, n.Column}))
		}
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		known = append(known, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		idx, ok := fields[k.Value]
		if !ok {
			d.errorf(k, "unknown field %q%s", k.Value, didYouMean(k.Value, known))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "%s is given twice", k.Value)
		}
		seen[k.Value] = true
		d.decode(val, v.Field(idx))
		f := t.Field(idx)
		if e := f.Tag.Get("enum"); e != "" && v.Field(idx).Kind() == reflect.String && v.Field(idx).String() != "" {
			d.enum(val, k.Value, v.Field(idx).String(), strings.Split(e, ","))
		}
	}
	for _, tag := range known {
		if t.Field(fields[tag]).Tag.Get("required") == "true" && !seen[tag] {
			d.errorf(n, "%s is missing", tag)
		}
	}
}

// ordered decodes a mapping into an Ordered, keeping the keys' order.
func (d *decoder) ordered(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "got %s, want a mapping", shape(n))
		return
	}
	keys, values, poss := v.FieldByName("Keys"), v.FieldByName("Values"), v.FieldByName("Pos")
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if slices.Contains(keys.Interface().([]string), k.Value) {
			d.errorf(k, "%s is given twice", k.Value)
			continue
		}
		e := reflect.New(values.Type().Elem()).Elem()
		d.decode(n.Content[i+1], e)
		keys.Set(reflect.Append(keys, reflect.ValueOf(k.Value)))
		values.Set(reflect.Append(values, e))
		poss.Set(reflect.Append(poss, reflect.ValueOf(Pos{k.Line, k.Column})))
	}
}

// shape names the kind of a node for messages: "a string", "a list".
func shape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return n.Value
	}
	return strconv.Quote(n.Value)
}

// didYouMean returns ` (did you mean "x"?)` for the known name closest to
// name, when one is close enough to be a typo, else "".
func didYouMean(name string, known []string) string {
	best, bestD := "", len(name)/3+2
	for _, k := range known {
		if dist := editDistance(strings.ToLower(name), strings.ToLower(k)); dist < bestD {
			best, bestD = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}
