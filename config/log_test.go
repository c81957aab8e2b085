package config

import (
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

// TestLogObjectNamesEveryVar keeps the start-up log's config object
// complete: every variable appears under its snake_case name
// (HOOKRELAY_ASYNC_COMMIT → async_commit).
func TestLogObjectNamesEveryVar(t *testing.T) {
	enc := zapcore.NewMapObjectEncoder()
	if err := Default().MarshalLogObject(enc); err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars() {
		key := strings.ToLower(strings.TrimPrefix(v.Name, "HOOKRELAY_"))
		if _, ok := enc.Fields[key]; !ok {
			t.Errorf("the config log object has no %q field for %s", key, v.Name)
		}
	}
}
