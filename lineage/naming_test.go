package lineage_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace/lineage"
)

func TestRunID(t *testing.T) {
	t.Parallel()
	// The expected values are Python's uuid.uuid5 of the same namespace
	// UUID (6b3e0f52-9d1c-4e8a-b147-2c5d90e3710a) and names.
	for _, tc := range []struct {
		namespace string
		id        int64
		want      string
	}{
		{"millrace", 42, "b0b23867-7dca-55a8-bd38-78c4b6d70ba5"},
		{"other", 42, "8fd36eed-0ab9-5af1-a101-2122fb0d67ed"},
	} {
		if got := lineage.RunID(tc.namespace, tc.id); got != tc.want {
			t.Errorf("RunID(%q, %d) = %s, want %s", tc.namespace, tc.id, got, tc.want)
		}
	}
}

func TestSourceDataset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		source, key   string
		wantNamespace string
		wantName      string
	}{
		{"s3://daredata-technical-challenge-data/", "stores.csv", "s3://daredata-technical-challenge-data", "stores.csv"},
		{"s3://bucket/exports/2024/", "sales/2020-01-01/sales.csv", "s3://bucket", "exports/2024/sales/2020-01-01/sales.csv"},
		{"/srv/bucket", "labels.csv", "file:///srv/bucket", "labels.csv"},
		{"/srv/bucket/", "labels.csv", "file:///srv/bucket", "labels.csv"},
	} {
		d := lineage.SourceDataset(tc.source, tc.key)
		if d.Namespace != tc.wantNamespace || d.Name != tc.wantName {
			t.Errorf("SourceDataset(%q, %q) = %s %s, want %s %s", tc.source, tc.key, d.Namespace, d.Name, tc.wantNamespace, tc.wantName)
		}
	}
}

func TestDatabaseOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want lineage.Database
	}{
		{"postgres://admin:s3cret@operational-db:5432/companydata", lineage.Database{Namespace: "postgres://operational-db:5432", Name: "companydata"}},
		{"postgres://admin:s3cret@[::1]:6543/companydata?sslmode=disable", lineage.Database{Namespace: "postgres://[::1]:6543", Name: "companydata"}},
		{"host=/var/run/postgresql dbname=companydata user=admin password=s3cret", lineage.Database{Namespace: "postgres://localhost:5432", Name: "companydata"}},
	} {
		c, err := pgconn.ParseConfig(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := lineage.DatabaseOf(c); got != tc.want {
			t.Errorf("DatabaseOf(%s) = %+v, want %+v", tc.url, got, tc.want)
		}
		if got := lineage.DatabaseOf(c).Table("sales"); got.Name != tc.want.Name+".public.sales" {
			t.Errorf("Table(sales) = %s", got.Name)
		}
	}
}
