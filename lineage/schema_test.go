package lineage_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// openLineageSchemas are the vendored schemas (testdata/openlineage) and
// millrace's facet's, compiled once: the event schema, and the schema of
// each facet by where it goes.
var openLineageSchemas = sync.OnceValues(func() (*schemas, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	files, err := filepath.Glob(filepath.Join("testdata", "openlineage", "*.json"))
	if err != nil {
		return nil, err
	}
	files = append(files, "MillraceRunFacet.json")
	ids := map[string]string{} // file name without .json -> $id
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		var head struct {
			ID string `json:"$id"`
		}
		if err := json.Unmarshal(data, &head); err != nil {
			return nil, err
		}
		if err := c.AddResource(head.ID, doc); err != nil {
			return nil, err
		}
		ids[filepath.Base(f[:len(f)-len(".json")])] = head.ID
	}
	compile := func(names ...string) ([]*jsonschema.Schema, error) {
		var out []*jsonschema.Schema
		for _, n := range names {
			s, err := c.Compile(ids[n])
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s := &schemas{}
	for _, x := range []struct {
		into  *[]*jsonschema.Schema
		names []string
	}{
		{&s.event, []string{"OpenLineage"}},
		{&s.run, []string{"MillraceRunFacet", "NominalTimeRunFacet", "ErrorMessageRunFacet"}},
		{&s.job, []string{"JobTypeJobFacet", "DocumentationJobFacet"}},
		{&s.dataset, []string{"SchemaDatasetFacet", "DatasetVersionDatasetFacet"}},
	} {
		if *x.into, err = compile(x.names...); err != nil {
			return nil, err
		}
	}
	return s, nil
})

// schemas are the compiled schemas of an event and of its facets.
type schemas struct {
	event, run, job, dataset []*jsonschema.Schema
}

// validate checks an event's JSON against the OpenLineage schema, and each
// of its facets objects against the schemas of the facets that go there.
func validate(t *testing.T, body []byte) {
	t.Helper()
	for _, err := range invalid(t, body) {
		t.Errorf("%v\n%s", err, body)
	}
}

// invalid returns what is not valid in an event's JSON (see validate).
func invalid(t *testing.T, body []byte) []error {
	t.Helper()
	s, err := openLineageSchemas()
	if err != nil {
		t.Fatalf("compile the OpenLineage schemas: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return []error{fmt.Errorf("not JSON: %w", err)}
	}
	var errs []error
	check := func(list []*jsonschema.Schema, v any, what string) {
		if v == nil {
			return
		}
		for _, sch := range list {
			if err := sch.Validate(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", what, err))
			}
		}
	}
	check(s.event, inst, "event")
	ev, _ := inst.(map[string]any)
	run, _ := ev["run"].(map[string]any)
	job, _ := ev["job"].(map[string]any)
	check(s.run, run["facets"], "run facets")
	check(s.job, job["facets"], "job facets")
	for _, key := range []string{"inputs", "outputs"} {
		list, _ := ev[key].([]any)
		for _, d := range list {
			if f, ok := d.(map[string]any)["facets"]; ok {
				check(s.dataset, f, key+" facets")
			}
		}
	}
	return errs
}

// TestSchemaCatches checks that the validation of the tests catches a bad
// event or facet.
func TestSchemaCatches(t *testing.T) {
	t.Parallel()
	const good = `{"eventType": "START", "eventTime": "2020-07-01T00:00:00Z", "producer": "https://github.com/millrace/millrace",
		"schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
		"run": {"runId": "b0b23867-7dca-55a8-bd38-78c4b6d70ba5", "facets": {"millrace": {"_producer": "https://github.com/millrace/millrace",
			"_schemaURL": "https://example.com/x", "run_id": 1, "pipeline": "p", "partition": "2020-01", "attempt": 1, "trigger": "cli", "requested_by": ""}}},
		"job": {"namespace": "millrace", "name": "p"}, "inputs": [], "outputs": []}`
	if errs := invalid(t, []byte(good)); len(errs) > 0 {
		t.Fatalf("a good event is refused: %v", errs)
	}
	for _, bad := range [][2]string{
		{`"runId": "b0b23867-7dca-55a8-bd38-78c4b6d70ba5"`, `"runId": "run-1"`},
		{`"eventType": "START"`, `"eventType": "STARTED"`},
		{`"eventTime": "2020-07-01T00:00:00Z"`, `"eventTime": "yesterday"`},
		{`"partition": "2020-01"`, `"partition": "January"`},
		{`"_producer": "https://github.com/millrace/millrace",`, ``},
	} {
		body := strings.Replace(good, bad[0], bad[1], 1)
		if body == good {
			t.Fatalf("%s is not in the event", bad[0])
		}
		if errs := invalid(t, []byte(body)); len(errs) == 0 {
			t.Errorf("an event with %s is valid", bad[1])
		}
	}
}
