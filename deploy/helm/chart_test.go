// Package helm_test checks the Helm chart of deploy/helm/millrace with
// Helm's own Go packages: its lint, and its templates rendered as `helm
// template` renders them, every manifest decoded strictly into Kubernetes'
// API types (an unknown or misspelt field fails).
package helm_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// chartDir is the chart, from this package's directory.
const chartDir = "millrace"

// rendered is a rendered chart: its objects by kind and name.
type rendered struct {
	deployment  appsv1.Deployment
	service     corev1.Service
	job         batchv1.Job
	secrets     map[string]corev1.Secret
	pdb         *policyv1.PodDisruptionBudget
	policy      *networkingv1.NetworkPolicy
	monitor     map[string]any
	hookWeights map[string]string
}

// render renders the chart with vals, as `helm template` does, and decodes
// every manifest strictly.
func render(t *testing.T, vals map[string]any) (rendered, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName, install.Namespace, install.Replace = "prod", "data", true
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return rendered{}, err
	}
	r, ok := rel.(*release.Release)
	if !ok {
		t.Fatalf("release of type %T", rel)
	}
	out := rendered{secrets: map[string]corev1.Secret{}, hookWeights: map[string]string{}}
	docs := []string{r.Manifest}
	for _, h := range r.Hooks {
		docs = append(docs, h.Manifest)
	}
	for _, doc := range docs {
		for _, m := range releaseutil.SplitManifests(doc) {
			var head struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name        string            `json:"name"`
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(m), &head); err != nil {
				t.Fatalf("manifest:\n%s\n%v", m, err)
			}
			if w, ok := head.Metadata.Annotations["helm.sh/hook-weight"]; ok {
				out.hookWeights[head.Kind+"/"+head.Metadata.Name] = w
			}
			var into any
			switch head.Kind {
			case "Deployment":
				into = &out.deployment
			case "Service":
				into = &out.service
			case "Job":
				into = &out.job
			case "Secret":
				var s corev1.Secret
				strict(t, m, &s)
				out.secrets[s.Name] = s
				continue
			case "PodDisruptionBudget":
				out.pdb = &policyv1.PodDisruptionBudget{}
				into = out.pdb
			case "NetworkPolicy":
				out.policy = &networkingv1.NetworkPolicy{}
				into = out.policy
			case "ServiceMonitor":
				into = &out.monitor
			default:
				t.Fatalf("unexpected kind %q:\n%s", head.Kind, m)
			}
			strict(t, m, into)
		}
	}
	return out, nil
}

// strict decodes a manifest into v, failing on an unknown field.
func strict(t *testing.T, manifest string, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(manifest), v); err != nil {
		t.Fatalf("decode strictly into %T: %v\n%s", v, err, manifest)
	}
}

// mustRender renders the chart with vals and fails on an error.
func mustRender(t *testing.T, vals map[string]any) rendered {
	t.Helper()
	r, err := render(t, vals)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// env returns a container's environment by name.
func env(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

// TestChartLint: helm lint finds no error and no warning (information,
// such as "icon is recommended", is not one).
func TestChartLint(t *testing.T) {
	t.Parallel()
	lint := action.NewLint()
	lint.Strict = true
	res := lint.Run([]string{chartDir}, map[string]any{"database": map[string]any{"url": "postgres://admin:secret@db:5432/companydata"}})
	for _, m := range res.Messages {
		if m.Severity > support.InfoSev {
			t.Errorf("lint: %s", m)
		}
	}
	if res.TotalChartsLinted != 1 {
		t.Errorf("%d charts linted, want 1", res.TotalChartsLinted)
	}
	for _, err := range res.Errors {
		t.Errorf("lint: %v", err)
	}
}

// TestChartDefaults renders the defaults with a database URL: two serve
// replicas behind a Service on 8082, probed on /healthz, non-root with a
// read-only root and /tmp the one writable path, every secret by
// secretKeyRef, db setup as a hook Job that runs after the Secrets it
// reads and before the replicas, and a PodDisruptionBudget.
func TestChartDefaults(t *testing.T) {
	t.Parallel()
	r := mustRender(t, map[string]any{"database": map[string]any{"url": "postgres://admin:secret@db:5432/companydata"}})
	d := r.deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != "millrace:v0.3.0" || !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("image %s args %v, want millrace:v0.3.0 serve (without --setup: the Job sets up)", c.Image, c.Args)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v, want GET /healthz on port http", name, p)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8082 || c.Ports[0].Name != "http" {
		t.Errorf("ports %+v, want http 8082", c.Ports)
	}
	if s := r.service; len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 8082 || s.Spec.Selector["app.kubernetes.io/component"] != "serve" {
		t.Errorf("service %+v", s.Spec)
	}
	sc, psc := c.SecurityContext, pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod security context %+v, want non-root", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v, want a read-only root, no escalation, no capabilities", sc)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/tmp" || len(pod.Volumes) != 1 || pod.Volumes[0].EmptyDir == nil {
		t.Errorf("volumes %+v, mounts %+v: want an emptyDir on /tmp", pod.Volumes, c.VolumeMounts)
	}
	e := env(c)
	for name, key := range map[string]string{"MILLRACE_DATABASE_URL": "database-url", "MILLRACE_UI_PASSWORD": "ui-password", "MILLRACE_DS_USER_PASSWORD": "ds-user-password",
		"MILLRACE_MLE_USER_PASSWORD": "mle-user-password", "MILLRACE_ANALYTICS_PASSWORD": "analytics-password"} {
		v := e[name]
		if v.Value != "" || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil || v.ValueFrom.SecretKeyRef.Key != key {
			t.Errorf("%s = %+v, want a secretKeyRef to %s", name, v, key)
		}
	}
	if hosts := e["MILLRACE_ALLOWED_HOSTS"].Value; !strings.Contains(hosts, "prod-millrace.data.svc.cluster.local") {
		t.Errorf("MILLRACE_ALLOWED_HOSTS = %q, want the Service's names", hosts)
	}
	if db := r.secrets["prod-millrace-database"]; db.StringData["database-url"] != "postgres://admin:secret@db:5432/companydata" {
		t.Errorf("database secret %+v", db.StringData)
	}
	job := r.job
	if job.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" || !slices.Equal(job.Spec.Template.Spec.Containers[0].Args, []string{"db", "setup"}) {
		t.Errorf("setup job: hook %q, args %v", job.Annotations["helm.sh/hook"], job.Spec.Template.Spec.Containers[0].Args)
	}
	if r.hookWeights["Secret/prod-millrace-database"] >= r.hookWeights["Job/prod-millrace-setup"] && r.hookWeights["Secret/prod-millrace-database"] != "-10" {
		t.Errorf("hook weights %v: the Secrets must come before the Job", r.hookWeights)
	}
	if r.pdb == nil || r.pdb.Spec.MinAvailable == nil || r.pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("pdb %+v, want minAvailable 1", r.pdb)
	}
	if r.policy != nil || r.monitor != nil {
		t.Error("a NetworkPolicy or ServiceMonitor without being asked for")
	}
}

// TestChartEveryOption renders the chart with every option: existing
// Secrets (none created), settings, a public URL and hosts, three
// replicas, the ServiceMonitor and the NetworkPolicy.
func TestChartEveryOption(t *testing.T) {
	t.Parallel()
	r := mustRender(t, map[string]any{
		"replicaCount":   3,
		"image":          map[string]any{"repository": "registry.example.com/millrace", "tag": "v0.4.0"},
		"database":       map[string]any{"existingSecret": "pg", "existingSecretKey": "url"},
		"passwords":      map[string]any{"existingSecret": "pw"},
		"settings":       map[string]any{"MILLRACE_SOURCE": "s3://bucket/prefix", "MILLRACE_MAX_CONCURRENT_RUNS": 4},
		"publicURL":      "https://millrace.example.com",
		"allowedHosts":   []any{"millrace.internal"},
		"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
		"networkPolicy":  map[string]any{"enabled": true, "ingressFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"name": "ingress"}}}}},
	})
	if len(r.secrets) != 0 {
		t.Errorf("secrets created beside existing ones: %v", r.secrets)
	}
	if *r.deployment.Spec.Replicas != 3 || r.deployment.Spec.Template.Spec.Containers[0].Image != "registry.example.com/millrace:v0.4.0" {
		t.Errorf("replicas %d image %s", *r.deployment.Spec.Replicas, r.deployment.Spec.Template.Spec.Containers[0].Image)
	}
	e := env(r.deployment.Spec.Template.Spec.Containers[0])
	if ref := e["MILLRACE_DATABASE_URL"].ValueFrom.SecretKeyRef; ref.Name != "pg" || ref.Key != "url" {
		t.Errorf("database URL from %s/%s, want pg/url", ref.Name, ref.Key)
	}
	if ref := e["MILLRACE_UI_PASSWORD"].ValueFrom.SecretKeyRef; ref.Name != "pw" {
		t.Errorf("UI password from %s, want pw", ref.Name)
	}
	for name, want := range map[string]string{"MILLRACE_SOURCE": "s3://bucket/prefix", "MILLRACE_MAX_CONCURRENT_RUNS": "4", "MILLRACE_PUBLIC_URL": "https://millrace.example.com"} {
		if e[name].Value != want {
			t.Errorf("%s = %q, want %q", name, e[name].Value, want)
		}
	}
	if !strings.HasSuffix(e["MILLRACE_ALLOWED_HOSTS"].Value, ",millrace.internal") {
		t.Errorf("MILLRACE_ALLOWED_HOSTS = %q", e["MILLRACE_ALLOWED_HOSTS"].Value)
	}
	if r.policy == nil || len(r.policy.Spec.Ingress) != 1 || len(r.policy.Spec.Ingress[0].From) != 1 || len(r.policy.Spec.Egress) != 3 {
		t.Errorf("network policy %+v", r.policy)
	}
	spec, _ := r.monitor["spec"].(map[string]any)
	endpoints, _ := spec["endpoints"].([]any)
	if r.monitor["apiVersion"] != "monitoring.coreos.com/v1" || len(endpoints) != 1 || fmt.Sprint(endpoints[0].(map[string]any)["path"]) != "/metrics" {
		t.Errorf("service monitor %v", r.monitor)
	}
}

// TestChartRefusals: what would start a broken millrace is refused at
// render time, saying what to do.
func TestChartRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vals map[string]any
		want string
	}{
		{map[string]any{}, "database.url or database.existingSecret"},
		{map[string]any{"database": map[string]any{"url": "postgres://x"}, "settings": map[string]any{"SOURCE": "s3://b"}}, "settings.SOURCE: settings are MILLRACE_* variables"},
		{map[string]any{"database": map[string]any{"url": "postgres://x"}, "settings": map[string]any{"MILLRACE_DATABASE_URL": "postgres://y"}}, "settings.MILLRACE_DATABASE_URL: set it with its own value"},
	} {
		if _, err := render(t, tc.vals); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("render %v: %v, want an error saying %q", tc.vals, err, tc.want)
		}
	}
}
