package portal

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static/*
var staticFiles embed.FS

// pages renders the portal's templates and serves its assets.
type pages struct {
	c      Config
	tmpl   map[string]*template.Template
	assets map[string]asset // by name
	urls   map[string]string
}

// asset is an embedded (or generated) file served under a content-hashed
// path, so it can be cached for good.
type asset struct {
	body  []byte
	ctype string
	hash  string
}

func newAsset(body []byte, ctype string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, ctype: ctype, hash: hex.EncodeToString(sum[:6])}
}

// view is what every page template gets.
type view struct {
	Title     string // the portal's title
	Page      string // this page's title
	Nav       string // the active navigation entry
	Prefix    string
	Tenant    string
	ReadOnly  bool
	CSRF      string
	ReturnURL string
	Assets    map[string]string
	Notice    string
	Data      any
}

// errorData is the data of the error page.
type errorData struct {
	Title, Message string
	ReturnURL      string
}

func newPages(c Config) (*pages, error) {
	p := &pages{c: c, tmpl: map[string]*template.Template{}, assets: map[string]asset{}, urls: map[string]string{}}
	for _, name := range []string{"portal.css", "portal.js"} {
		b, err := staticFiles.ReadFile("static/" + name)
		if err != nil {
			return nil, fmt.Errorf("portal: asset %s: %w", name, err)
		}
		ctype := "text/css; charset=utf-8"
		if strings.HasSuffix(name, ".js") {
			ctype = "text/javascript; charset=utf-8"
		}
		p.assets[name] = newAsset(b, ctype)
	}
	// The accent colour reaches the pages through a stylesheet, since the
	// CSP allows no inline style; CheckAccent has vetted it.
	p.assets["theme.css"] = newAsset([]byte(":root { --accent: "+c.Accent+"; }\n"), "text/css; charset=utf-8")
	for name, a := range p.assets {
		p.urls[strings.ReplaceAll(name, ".", "_")] = c.Prefix + "/assets/" + a.hash + "/" + name
	}

	funcs := template.FuncMap{
		"path": func(parts ...any) string {
			var b strings.Builder
			b.WriteString(c.Prefix)
			for _, x := range parts {
				fmt.Fprint(&b, x)
			}
			return b.String()
		},
		"when": when,
		"pct":  pct,
		"rate": func(r *float64) string {
			if r == nil {
				return "—"
			}
			return pct(*r)
		},
		"pretty":  pretty,
		"join":    strings.Join,
		"has":     slices.Contains[[]string],
		"deref":   func(p *int) int { return *p },
		"isoTime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ms":      func(d time.Duration) int64 { return d.Milliseconds() },
	}
	base, err := template.New("").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("portal: parse layout: %w", err)
	}
	entries, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := strings.TrimSuffix(strings.TrimPrefix(e, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFiles, e)
		if err != nil {
			return nil, fmt.Errorf("portal: parse %s: %w", e, err)
		}
		p.tmpl[name] = t
	}
	return p, nil
}

// render writes page name (executed through the layout) with data.
func (p *pages) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, data any) {
	p.execute(w, r, status, name, "layout", s, data)
}

// fragment writes only the named template of page name (for the script's
// in-place updates).
func (p *pages) fragment(w http.ResponseWriter, r *http.Request, status int, name, fragment string, s *session, data any) {
	p.execute(w, r, status, name, fragment, s, data)
}

func (p *pages) execute(w http.ResponseWriter, r *http.Request, status int, name, entry string, s *session, data any) {
	t, ok := p.tmpl[name]
	if !ok {
		http.Error(w, "portal: no template "+name, http.StatusInternalServerError)
		return
	}
	v := view{Title: p.c.Title, Prefix: p.c.Prefix, Assets: p.urls, Data: data}
	if s == nil {
		s = sessionOf(r)
	}
	if s != nil {
		v.Tenant, v.ReadOnly, v.CSRF, v.ReturnURL = s.Tenant, s.ReadOnly, s.csrf, s.ReturnURL
	}
	if pd, ok := data.(interface{ page() (string, string) }); ok {
		v.Page, v.Nav = pd.page()
	}
	v.Notice = notices[r.URL.Query().Get("notice")]
	if v.Notice != "" && r.URL.Query().Get("n") != "" {
		if n, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil {
			v.Notice = fmt.Sprintf(v.Notice, n)
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, entry, v); err != nil {
		http.Error(w, "portal: render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// notices are the messages a redirect after a form can show (?notice=).
var notices = map[string]string{
	"created":   "Endpoint created. Reveal its signing secret below to set up your receiver.",
	"saved":     "Changes saved.",
	"enabled":   "Endpoint enabled: held deliveries are being sent.",
	"disabled":  "Endpoint disabled: new deliveries are held until you enable it.",
	"deleted":   "Endpoint deleted.",
	"resent":    "Resent: a new attempt is on its way.",
	"recovered": "%d failed deliveries are being sent again.",
}

func (p *pages) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	p.render(w, r, status, "error", nil, errorData{Title: title, Message: msg})
}

func (e errorData) page() (string, string) { return e.Title, "" }

// serveAsset serves an embedded asset; a stale hash gets the current file
// with a short cache.
func (p *pages) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := p.assets[r.PathValue("name")]
	if !ok {
		p.errorPage(w, r, http.StatusNotFound, "Page not found", "There is no such file.")
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	if r.PathValue("hash") == a.hash {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=300")
	}
	w.Header().Set("ETag", `"`+a.hash+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// when shows a time in UTC, to the second.
func when(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return "—"
		}
		return v.UTC().Format("2006-01-02 15:04:05 UTC")
	case *time.Time:
		if v == nil {
			return "—"
		}
		return when(*v)
	}
	return ""
}

// pct shows a success rate (-1: none).
func pct(rate float64) string {
	if rate < 0 {
		return "—"
	}
	return strconv.FormatFloat(rate*100, 'f', 1, 64) + "%"
}

// pretty indents JSON for reading; anything else is shown as it is.
func pretty(raw []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
