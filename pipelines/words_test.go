package pipelines_test

import (
	"errors"
	"testing"

	"github.com/millrace/millrace/pipelines"
)

// TestUnknownPipeline: a name that is no pipeline is refused with the
// pipelines' names in words, not as a Go slice.
func TestUnknownPipeline(t *testing.T) {
	t.Parallel()
	_, err := pipelines.New(nil).Get("load_sale_data")
	want := `no such pipeline "load_sale_data": the pipelines are load_client_data, load_sales_data, process_data and sales_statistics`
	if err == nil || !errors.Is(err, pipelines.ErrUnknown) || err.Error() != want {
		t.Errorf("Get(load_sale_data) = %v, want %q", err, want)
	}
}
