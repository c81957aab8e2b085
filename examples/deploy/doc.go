// Package deploy holds deployment examples for hookrelay: a Docker Compose
// file (compose.yaml), Kubernetes manifests running hookrelay as a native
// sidecar (kubernetes/), and a systemd unit (systemd/hookrelay.service).
//
// The package has no code. Its test parses the repository's Dockerfile with
// BuildKit's parser and every manifest with a YAML parser, checks their
// shape (non-root final stage, sidecar probes, secret-based environment) and
// that every HOOKRELAY_ variable they mention exists in package config.
package deploy
