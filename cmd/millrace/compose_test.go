package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads ../../docker-compose.yml the way docker compose does,
// with the given .env content.
func loadCompose(t *testing.T, dotenv string) *types.Project {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"docker-compose.yml": src, ".env": []byte(dotenv)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := composecli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		composecli.WithWorkingDirectory(dir), composecli.WithEnvFiles(), composecli.WithDotEnv, composecli.WithName("millrace"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// TestComposeFile checks what can be checked of the compose file without a
// Docker engine: the services, ports, health checks, dependencies, the
// defaults of the specification, and that every MILLRACE_* variable it sets
// is one the binary reads.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, "")
	db, err := p.GetService("operational-db")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(db.Image, "postgres:") {
		t.Errorf("operational-db image %q, want the official postgres image", db.Image)
	}
	env := func(s types.ServiceConfig, k string) string {
		if v, ok := s.Environment[k]; ok && v != nil {
			return *v
		}
		return ""
	}
	for k, want := range map[string]string{"POSTGRES_USER": "admin", "POSTGRES_PASSWORD": "admin", "POSTGRES_DB": "companydata"} {
		if got := env(db, k); got != want {
			t.Errorf("operational-db %s = %q, want %q", k, got, want)
		}
	}
	if !publishes(db, 5432) {
		t.Errorf("operational-db does not publish 5432: %+v", db.Ports)
	}
	if db.HealthCheck == nil || !strings.Contains(strings.Join(db.HealthCheck.Test, " "), "pg_isready") {
		t.Errorf("operational-db health check %+v, want pg_isready", db.HealthCheck)
	}
	if len(db.Volumes) == 0 || db.Volumes[0].Type != types.VolumeTypeVolume {
		t.Errorf("operational-db has no named volume: %+v", db.Volumes)
	}

	var orch types.ServiceConfig
	for _, s := range p.Services {
		if s.Build != nil {
			orch = s
		}
	}
	if orch.Name == "" {
		t.Fatal("no service is built from the Dockerfile")
	}
	if orch.Build.Dockerfile != "" && orch.Build.Dockerfile != "Dockerfile" {
		t.Errorf("built from %s", orch.Build.Dockerfile)
	}
	if !publishes(orch, 8082) {
		t.Errorf("%s does not publish 8082: %+v", orch.Name, orch.Ports)
	}
	if dep, ok := orch.DependsOn["operational-db"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("%s depends_on %+v, want operational-db service_healthy", orch.Name, orch.DependsOn)
	}
	if orch.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("%s restart %q", orch.Name, orch.Restart)
	}
	if got := strings.Join(orch.Command, " "); got != "serve --setup" {
		t.Errorf("%s command %q, want set-up then serve", orch.Name, got)
	}
	if got := env(orch, "MILLRACE_DATABASE_URL"); got != "postgres://admin:admin@operational-db:5432/companydata" {
		t.Errorf("MILLRACE_DATABASE_URL = %q", got)
	}
	if got := env(orch, "MILLRACE_SOURCE"); got != "s3://daredata-technical-challenge-data" {
		t.Errorf("MILLRACE_SOURCE = %q, want the public bucket", got)
	}

	var c Config
	known := slices.Clone(extraEnv)
	for _, s := range c.settings() {
		known = append(known, s.env)
	}
	for k := range orch.Environment {
		if strings.HasPrefix(k, "MILLRACE_") && !slices.Contains(known, k) {
			t.Errorf("docker-compose.yml sets %s, which millrace does not read", k)
		}
	}

	// Secrets come from .env.
	p = loadCompose(t, "ADMIN_PASSWORD=s3cret\nDS_USER_PASSWORD=ds-secret\n")
	db, _ = p.GetService("operational-db")
	orch, _ = p.GetService(orch.Name)
	if env(db, "POSTGRES_PASSWORD") != "s3cret" || env(orch, "MILLRACE_DATABASE_URL") != "postgres://admin:s3cret@operational-db:5432/companydata" ||
		env(orch, "MILLRACE_DS_USER_PASSWORD") != "ds-secret" {
		t.Errorf(".env did not reach the services: %v %v", db.Environment, orch.Environment)
	}
}

// publishes reports whether the service publishes the port on the host.
func publishes(s types.ServiceConfig, port uint32) bool {
	for _, p := range s.Ports {
		if p.Target == port && p.Published == strconv.FormatUint(uint64(port), 10) {
			return true
		}
	}
	return false
}

// TestDockerfile checks the Dockerfile's promises: a static binary, a
// non-root user, the UI port and a health check.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{"CGO_ENABLED=0", "USER nonroot", "EXPOSE 8082", "HEALTHCHECK", "ARG VERSION", "-X main.version=${VERSION}"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Count(df, "FROM ") < 2 {
		t.Error("Dockerfile is not multi-stage")
	}
}

// TestReadmeConfiguration checks that the README's configuration table
// lists every variable the binary reads, with its default.
func TestReadmeConfiguration(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var c Config
	for _, s := range c.settings() {
		row := "| `" + s.env + "` | "
		i := strings.Index(readme, row)
		if i < 0 {
			t.Errorf("README's configuration table lacks %s", s.env)
			continue
		}
		if s.def != "" && !strings.HasPrefix(readme[i+len(row):], "`"+s.def+"`") {
			t.Errorf("README gives %s another default than %q", s.env, s.def)
		}
	}
	for _, env := range extraEnv {
		if !strings.Contains(readme, "| `"+env+"` |") {
			t.Errorf("README's configuration table lacks %s", env)
		}
	}
}
