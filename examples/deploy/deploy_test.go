package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"gopkg.in/yaml.v3"

	"github.com/hookrelay/hookrelay/config"
)

// shutdownTimeout is HOOKRELAY_SHUTDOWN_TIMEOUT's default; every stop
// deadline in the manifests must exceed it.
func shutdownTimeout(t *testing.T) time.Duration {
	t.Helper()
	for _, v := range config.Vars() {
		if v.Name == "HOOKRELAY_SHUTDOWN_TIMEOUT" {
			d, err := time.ParseDuration(v.Default)
			if err != nil {
				t.Fatalf("HOOKRELAY_SHUTDOWN_TIMEOUT default %q: %v", v.Default, err)
			}
			return d
		}
	}
	t.Fatal("config.Vars has no HOOKRELAY_SHUTDOWN_TIMEOUT")
	return 0
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

func TestDockerfile(t *testing.T) {
	src := readFile(t, filepath.Join("..", "..", "Dockerfile"))
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile warning: %s (line %d)", w.Short, w.Location.Start.Line)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("parse Dockerfile instructions: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stage(s), want a multi-stage build", len(stages))
	}
	if len(metaArgs) != 0 {
		t.Errorf("global ARGs %v: keep build args inside the stage that uses them", metaArgs)
	}

	build, final := stages[0], stages[len(stages)-1]
	goMod := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readFile(t, filepath.Join("..", "..", "go.mod")))
	if goMod == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + string(goMod[1]); build.BaseName != want {
		t.Errorf("builder FROM %q, want %s (go.mod's Go version)", build.BaseName, want)
	}

	t.Run("builder caches modules", func(t *testing.T) {
		copiedMod, downloaded := false, false
		for _, c := range build.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if slices.Contains(c.SourcePaths, "go.mod") && slices.Contains(c.SourcePaths, "go.sum") && !downloaded {
					copiedMod = true
				}
				if slices.Contains(c.SourcePaths, ".") && !downloaded {
					t.Errorf("COPY . before go mod download: any change invalidates the module layer")
				}
			case *instructions.RunCommand:
				if strings.Contains(strings.Join(c.CmdLine, " "), "go mod download") {
					downloaded = true
					if !copiedMod {
						t.Errorf("go mod download runs before COPY go.mod go.sum")
					}
					if !hasCacheMount(t, c) {
						t.Errorf("go mod download has no --mount=type=cache")
					}
				}
			}
		}
		if !downloaded {
			t.Error("builder never runs go mod download")
		}
	})

	t.Run("static, trimmed, stamped build", func(t *testing.T) {
		var buildRun string
		hasVersionArg := false
		for _, c := range build.Commands {
			switch c := c.(type) {
			case *instructions.ArgCommand:
				for _, a := range c.Args {
					if a.Key == "VERSION" && a.Value != nil {
						hasVersionArg = true
					}
				}
			case *instructions.RunCommand:
				if line := strings.Join(c.CmdLine, " "); strings.Contains(line, "go build") {
					buildRun = line
				}
			}
		}
		if !hasVersionArg {
			t.Error("no ARG VERSION with a default in the builder")
		}
		for _, want := range []string{
			"CGO_ENABLED=0",
			"-trimpath",
			"-X github.com/hookrelay/hookrelay/relay.Version=${VERSION}",
			"./cmd/hookrelay",
		} {
			if !strings.Contains(buildRun, want) {
				t.Errorf("go build RUN %q lacks %q", buildRun, want)
			}
		}
	})

	t.Run("final stage", func(t *testing.T) {
		nonRootBase := strings.HasPrefix(final.BaseName, "gcr.io/distroless/") && strings.HasSuffix(final.BaseName, ":nonroot")
		var user string
		var entrypoint, cmd *instructions.ShellDependantCmdLine
		exposed := false
		copiedBinary := false
		for _, c := range final.Commands {
			switch c := c.(type) {
			case *instructions.UserCommand:
				user = c.User
			case *instructions.EntrypointCommand:
				entrypoint = &c.ShellDependantCmdLine
			case *instructions.CmdCommand:
				cmd = &c.ShellDependantCmdLine
			case *instructions.ExposeCommand:
				exposed = slices.Contains(c.Ports, "8080")
			case *instructions.CopyCommand:
				copiedBinary = copiedBinary || (c.From == build.Name && c.DestPath == "/hookrelay")
			case *instructions.RunCommand:
				t.Errorf("RUN %q in the final stage: it should only copy the binary", c.CmdLine)
			}
		}
		if !nonRootBase && user == "" {
			t.Errorf("final stage FROM %q with no USER: runs as root", final.BaseName)
		}
		if user != "" {
			name, _, _ := strings.Cut(user, ":")
			if name == "root" || name == "0" {
				t.Errorf("final stage USER %q is root", user)
			}
		}
		if !nonRootBase && !strings.HasPrefix(final.BaseName, "scratch") {
			t.Errorf("final stage FROM %q, want distroless static nonroot (or scratch)", final.BaseName)
		}
		if !copiedBinary {
			t.Errorf("final stage does not COPY --from=%s the binary to /hookrelay", build.Name)
		}
		if !exposed {
			t.Error("final stage does not EXPOSE 8080")
		}
		if entrypoint == nil || entrypoint.PrependShell || !slices.Equal(entrypoint.CmdLine, []string{"/hookrelay"}) {
			t.Errorf("ENTRYPOINT %+v, want exec form [\"/hookrelay\"]", entrypoint)
		}
		if cmd == nil || cmd.PrependShell || !slices.Equal(cmd.CmdLine, []string{"run"}) {
			t.Errorf("CMD %+v, want exec form [\"run\"]", cmd)
		}
	})
}

func hasCacheMount(t *testing.T, c *instructions.RunCommand) bool {
	t.Helper()
	// Mount options are only parsed when the command is expanded; the
	// identity expander leaves ${VARS} as written.
	if err := c.Expand(func(word string) (string, error) { return word, nil }); err != nil {
		t.Fatalf("expand RUN %q: %v", c.CmdLine, err)
	}
	for _, m := range instructions.GetMounts(c) {
		if m.Type == instructions.MountTypeCache {
			return true
		}
	}
	return false
}

// compose is the part of compose.yaml the test checks.
type compose struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Environment     map[string]string        `yaml:"environment"`
		Healthcheck     *struct{ Test []string } `yaml:"healthcheck"`
		NetworkMode     string                   `yaml:"network_mode"`
		StopGracePeriod string                   `yaml:"stop_grace_period"`
		DependsOn       map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

func TestCompose(t *testing.T) {
	var c compose
	if err := yaml.Unmarshal(readFile(t, "compose.yaml"), &c); err != nil {
		t.Fatalf("parse compose.yaml: %v", err)
	}
	for _, name := range []string{"postgres", "app", "hookrelay"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("compose.yaml has no %q service", name)
		}
	}
	pg := c.Services["postgres"]
	if !strings.HasPrefix(pg.Image, "postgres:16") {
		t.Errorf("postgres image %q, want postgres:16", pg.Image)
	}
	if pg.Healthcheck == nil || len(pg.Healthcheck.Test) == 0 {
		t.Error("postgres has no healthcheck")
	}

	hr := c.Services["hookrelay"]
	if hr.Build == nil {
		t.Fatal("hookrelay service is not built from the repository's Dockerfile")
	}
	df := filepath.Join(hr.Build.Context, hr.Build.Dockerfile)
	if got, _ := filepath.Abs(df); got != mustAbs(t, filepath.Join("..", "..", "Dockerfile")) {
		t.Errorf("hookrelay builds %s, want the root Dockerfile", df)
	}
	if hr.NetworkMode != "service:app" {
		t.Errorf("hookrelay network_mode %q, want service:app (a sidecar shares the app's network)", hr.NetworkMode)
	}
	if hr.DependsOn["postgres"].Condition != "service_healthy" {
		t.Errorf("hookrelay does not wait for a healthy postgres: %+v", hr.DependsOn)
	}
	if hr.Environment["HOOKRELAY_DATABASE_URL"] == "" {
		t.Error("hookrelay has no HOOKRELAY_DATABASE_URL")
	}
	if grace, err := time.ParseDuration(hr.StopGracePeriod); err != nil || grace <= shutdownTimeout(t) {
		t.Errorf("hookrelay stop_grace_period %q, want a duration above HOOKRELAY_SHUTDOWN_TIMEOUT (%s)", hr.StopGracePeriod, shutdownTimeout(t))
	}
	// distroless has no shell for a healthcheck; the app's checks the
	// sidecar's /readyz through the shared network namespace.
	if app := c.Services["app"]; app.Healthcheck == nil || !strings.Contains(strings.Join(app.Healthcheck.Test, " "), "/readyz") {
		t.Error("no healthcheck probes hookrelay's /readyz")
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatalf("abs %s: %v", p, err)
	}
	return a
}

// k8sObject is the part of a Kubernetes manifest the test checks.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		PolicyTypes []string `yaml:"policyTypes"`
		Egress      []struct {
			Ports []struct {
				Port int `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"egress"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
	InitContainers                []container `yaml:"initContainers"`
	Containers                    []container `yaml:"containers"`
}

type container struct {
	Name          string `yaml:"name"`
	Image         string `yaml:"image"`
	RestartPolicy string `yaml:"restartPolicy"`
	Env           []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	StartupProbe    *probe `yaml:"startupProbe"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	SecurityContext *struct {
		RunAsNonRoot           *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem *bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
}

func (p *probe) path() string {
	if p == nil || p.HTTPGet == nil {
		return ""
	}
	return p.HTTPGet.Path
}

// decodeAll parses every document of a multi-document YAML file.
func decodeAll(t *testing.T, path string) []k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("parse %s document %d: %v", path, len(objs)+1, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("%s document %d lacks apiVersion, kind or metadata.name", path, len(objs)+1)
		}
		objs = append(objs, o)
	}
}

func TestKubernetes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no kubernetes/*.yaml (%v)", err)
	}
	byKind := map[string][]k8sObject{}
	for _, f := range files {
		for _, o := range decodeAll(t, f) {
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	if len(byKind["Deployment"]) != 1 || len(byKind["Secret"]) != 1 || len(byKind["NetworkPolicy"]) != 1 {
		t.Fatalf("want one Deployment, Secret and NetworkPolicy; have %d, %d, %d",
			len(byKind["Deployment"]), len(byKind["Secret"]), len(byKind["NetworkPolicy"]))
	}
	secret := byKind["Secret"][0]
	pod := byKind["Deployment"][0].Spec.Template.Spec

	if len(pod.Containers) == 0 {
		t.Error("the pod has no application container")
	}
	var sidecar *container
	for i, c := range pod.InitContainers {
		if strings.Contains(c.Image, "hookrelay") {
			sidecar = &pod.InitContainers[i]
		}
	}
	if sidecar == nil {
		t.Fatal("no hookrelay init container (native sidecar)")
	}
	// hookrelay publishes no image: the one named must be the one the
	// README says how to build and push.
	readme := string(readFile(t, "README.md"))
	for _, want := range []string{"-t " + sidecar.Image + " .", "docker push " + sidecar.Image} {
		if !strings.Contains(readme, want) {
			t.Errorf("the sidecar image is %s, but examples/deploy/README.md has no %q", sidecar.Image, want)
		}
	}
	if sidecar.RestartPolicy != "Always" {
		t.Errorf("hookrelay init container restartPolicy %q, want Always (native sidecar)", sidecar.RestartPolicy)
	}
	for _, p := range []struct {
		name string
		got  string
		want string
	}{
		{"livenessProbe", sidecar.LivenessProbe.path(), "/healthz"},
		{"readinessProbe", sidecar.ReadinessProbe.path(), "/readyz"},
	} {
		if p.got != p.want {
			t.Errorf("sidecar %s path %q, want %q", p.name, p.got, p.want)
		}
	}
	if sidecar.StartupProbe.path() == "" {
		t.Error("sidecar has no HTTP startupProbe")
	}
	fromSecret := map[string]bool{}
	for _, e := range sidecar.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != secret.Metadata.Name {
			t.Errorf("%s refers to Secret %q; secret.yaml defines %q", e.Name, ref.Name, secret.Metadata.Name)
		}
		if _, ok := secret.StringData[ref.Key]; !ok {
			t.Errorf("%s refers to key %q, absent from secret.yaml", e.Name, ref.Key)
		}
		fromSecret[e.Name] = true
	}
	for _, name := range []string{"HOOKRELAY_DATABASE_URL", "HOOKRELAY_ADMIN_TOKEN"} {
		if !fromSecret[name] {
			t.Errorf("sidecar %s does not come from a secretKeyRef", name)
		}
	}
	if sc := sidecar.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("sidecar securityContext lacks runAsNonRoot: true and readOnlyRootFilesystem: true")
	}
	if len(sidecar.Resources.Requests) == 0 || len(sidecar.Resources.Limits) == 0 {
		t.Error("sidecar has no resource requests and limits")
	}
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= shutdownTimeout(t) {
		t.Errorf("terminationGracePeriodSeconds %d, want above HOOKRELAY_SHUTDOWN_TIMEOUT (%s)", pod.TerminationGracePeriodSeconds, shutdownTimeout(t))
	}

	np := byKind["NetworkPolicy"][0]
	ports := map[int]bool{}
	for _, e := range np.Spec.Egress {
		for _, p := range e.Ports {
			ports[p.Port] = true
		}
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Egress") || !ports[443] || !ports[5432] {
		t.Errorf("NetworkPolicy egress ports %v (types %v), want Egress rules for 443 (webhooks) and 5432 (PostgreSQL)", ports, np.Spec.PolicyTypes)
	}
}

func TestSystemdUnit(t *testing.T) {
	settings := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, filepath.Join("systemd", "hookrelay.service"))))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("malformed unit line %q", line)
			continue
		}
		settings[k] = append(settings[k], v)
	}
	for _, want := range []struct{ key, value string }{
		{"EnvironmentFile", "/etc/hookrelay/env"},
		{"DynamicUser", "yes"},
		{"Restart", "on-failure"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ExecStart", "/usr/local/bin/hookrelay run"},
	} {
		if !slices.Contains(settings[want.key], want.value) {
			t.Errorf("%s=%v, want %s", want.key, settings[want.key], want.value)
		}
	}
	stop, err := time.ParseDuration(strings.Join(settings["TimeoutStopSec"], ""))
	if err != nil || stop <= shutdownTimeout(t) {
		t.Errorf("TimeoutStopSec=%v, want a duration above HOOKRELAY_SHUTDOWN_TIMEOUT (%s)", settings["TimeoutStopSec"], shutdownTimeout(t))
	}
}

// TestVariablesExist fails when a deployment file mentions a HOOKRELAY_
// variable that package config does not read.
func TestVariablesExist(t *testing.T) {
	known := map[string]bool{}
	for _, v := range config.Vars() {
		known[v.Name] = true
	}
	files := []string{"compose.yaml", filepath.Join("systemd", "hookrelay.service"), "README.md", filepath.Join("..", "..", "Dockerfile")}
	k8s, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil {
		t.Fatalf("glob: %v", err)
	}
	files = append(files, k8s...)

	varRE := regexp.MustCompile(`HOOKRELAY_[A-Z0-9_]+`)
	seen := 0
	for _, f := range files {
		for _, name := range varRE.FindAllString(string(readFile(t, f)), -1) {
			seen++
			if !known[name] {
				t.Errorf("%s mentions %s, which is not in config.Vars()", f, name)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no HOOKRELAY_ variables found: the files were not read")
	}
}
