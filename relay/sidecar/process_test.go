package sidecar

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	for _, tc := range []struct {
		name string
		gogc string // "" leaves GOGC unset
		want int
	}{
		{name: "GOGC unset: the relay's default", want: DefaultGCPercent},
		{name: "GOGC set: left to the runtime", gogc: "150", want: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc) // restored after the test
			if tc.gogc == "" {
				if err := os.Unsetenv("GOGC"); err != nil {
					t.Fatal(err)
				}
			}
			debug.SetGCPercent(100)
			tuneGC()
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Errorf("GC percent after tuneGC = %d, want %d", got, tc.want)
			}
		})
	}
}
