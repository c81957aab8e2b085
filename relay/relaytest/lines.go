package relaytest

import (
	"bufio"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Lines collects the lines a process prints, for a test that waits for
// one of them.
type Lines struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced when lines grows or the input ends
	ended   bool
}

// ReadLines reads r's lines in the background until it ends.
func ReadLines(r io.Reader) *Lines {
	l := &Lines{changed: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.update(func() { l.lines = append(l.lines, sc.Text()) })
		}
		l.update(func() { l.ended = true })
	}()
	return l
}

// update changes l under its lock and wakes the waiters.
func (l *Lines) update(change func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	change()
	close(l.changed)
	l.changed = make(chan struct{})
}

// Wait reports whether a line matching re has been read, waiting for one
// until timeout passes or the input ends. A closed stop (the process has
// exited, while a child it left holds the input open) ends the wait after
// one more look; nil never does.
func (l *Lines) Wait(re *regexp.Regexp, timeout time.Duration, stop <-chan struct{}) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	stopped := false
	for {
		l.mu.Lock()
		found := false
		for _, line := range l.lines {
			if found = re.MatchString(line); found {
				break
			}
		}
		ended, changed := l.ended, l.changed
		l.mu.Unlock()
		switch {
		case found:
			return true
		case ended || stopped:
			return false
		}
		select {
		case <-changed:
		case <-stop:
			stopped, stop = true, nil // one more look: the last lines may be in
		case <-timer.C:
			return false
		}
	}
}

// String returns the lines read so far, each ended by a newline.
func (l *Lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.lines {
		b.WriteString(line + "\n")
	}
	return b.String()
}
