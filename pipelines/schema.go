package pipelines

import (
	"encoding/json"
	"reflect"
	"strings"
)

// Schema returns the JSON Schema (draft 2020-12) of a pipeline file, made
// from the types of spec.go and their doc tags, which the checker decodes
// with: editors validate with it while typing (`millrace pipelines schema`,
// `# yaml-language-server: $schema=...`). millrace.yaml is $defs/Project.
func Schema() []byte {
	s := schemaOf(reflect.TypeFor[Spec]())
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://millrace.dev/schema/millrace-pipeline.v1.json"
	s["title"] = "millrace pipeline (" + APIVersion + ")"
	s["$defs"] = map[string]any{"Project": schemaOf(reflect.TypeFor[Project]())}
	b, _ := json.MarshalIndent(s, "", "  ") // maps of strings and slices: never fails
	return append(b, '\n')
}

// schemaOf returns the schema of a type of spec.go.
func schemaOf(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	object := func() map[string]any {
		props, required := map[string]any{}, []string{}
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			p := schemaOf(f.Type)
			if d := f.Tag.Get("doc"); d != "" {
				p["description"] = d
			}
			if e := f.Tag.Get("enum"); e != "" {
				p["enum"] = strings.Split(e, ",")
			}
			if f.Tag.Get("required") == "true" {
				required = append(required, tag)
			}
			props[tag] = p
		}
		o := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
		if len(required) > 0 {
			o["required"] = required
		}
		return o
	}
	switch t {
	case reflect.TypeFor[ColumnSpec]():
		return map[string]any{"oneOf": []any{map[string]any{"type": "string", "enum": typeEnum}, object()}}
	case reflect.TypeFor[Schedule]():
		return map[string]any{"oneOf": []any{map[string]any{"type": "string", "enum": []string{"manual", "monthly", "after_inputs"}}, object()}}
	case reflect.TypeFor[NotEmpty]():
		return map[string]any{"oneOf": []any{map[string]any{"type": "boolean"}, object()}}
	}
	switch t.Kind() {
	case reflect.Struct:
		if strings.HasPrefix(t.Name(), "Ordered[") {
			f, _ := t.FieldByName("Values")
			return map[string]any{"type": "object", "additionalProperties": schemaOf(f.Type.Elem())}
		}
		return object()
	case reflect.Slice:
		items := schemaOf(t.Elem())
		if t.Elem().Kind() == reflect.String {
			items = map[string]any{"type": []string{"string", "number"}}
		}
		return map[string]any{"type": "array", "items": items}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Int:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	}
	return map[string]any{"type": "string"}
}
