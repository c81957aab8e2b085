package relay

import (
	"runtime/debug"
)

// Version is hookrelay's version: what `hookrelay version` prints and what
// deliveries carry in their user-agent header ("hookrelay/" + Version).
//
// A release build stamps it, and a stamped value always wins:
//
//	go build -ldflags "-X github.com/hookrelay/hookrelay/relay.Version=v1.2.3" ./cmd/hookrelay
//
// Left unstamped, it is filled in when the package initialises from the
// binary's build information (see [BuildVersion]): the module version for
// `go install github.com/hookrelay/hookrelay/cmd/hookrelay@v1.2.3`, the
// commit as a Go pseudo-version (v0.0.0-20261123120000-3f1c2b8e9d4a, with
// "+dirty" for uncommitted changes) for a `go build` in a git checkout, or
// "dev" when neither is known.
var Version string

func init() {
	if Version == "" {
		info, _ := debug.ReadBuildInfo() // nil info (no build information) gives "dev"
		Version = BuildVersion(info)
	}
}

// BuildVersion derives a version from build information: the main module's
// version when the go command recorded one (a release tag, or the
// pseudo-version Go 1.24+ computes from the checkout's commit), else
// "dev-<12 hex digits of the VCS revision>" with "+dirty" when the tree had
// uncommitted changes, else "dev".
func BuildVersion(info *debug.BuildInfo) string {
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		return "dev-" + rev + "+dirty"
	}
	return "dev-" + rev
}
