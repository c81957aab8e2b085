package portal

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/endpoint"
)

// routes registers the portal's pages under the prefix.
func (p *Portal) routes() {
	m := http.NewServeMux()
	pre := p.c.Prefix
	get := func(path string, h func(w http.ResponseWriter, r *http.Request) error) {
		m.HandleFunc("GET "+pre+path, p.authed(h))
	}
	post := func(path string, h func(w http.ResponseWriter, r *http.Request) error) {
		m.HandleFunc("POST "+pre+path, p.authed(h))
	}
	home := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, pre+"/endpoints", http.StatusSeeOther)
	}
	m.HandleFunc("GET "+pre, home)
	m.HandleFunc("GET "+pre+"/{$}", home)
	m.HandleFunc("GET "+pre+"/login", p.login)
	m.HandleFunc("GET "+pre+"/assets/{hash}/{name}", p.pages.serveAsset)
	post("/logout", p.logout)

	get("/endpoints", p.listEndpoints)
	get("/endpoints/new", p.writable(p.newEndpoint))
	post("/endpoints", p.createEndpoint)
	get("/endpoints/{id}", p.showEndpoint)
	get("/endpoints/{id}/edit", p.writable(p.editEndpoint))
	post("/endpoints/{id}", p.updateEndpoint)
	post("/endpoints/{id}/enable", p.setEnabled(true))
	post("/endpoints/{id}/disable", p.setEnabled(false))
	get("/endpoints/{id}/delete", p.writable(p.confirmDelete))
	post("/endpoints/{id}/delete", p.deleteEndpoint)
	post("/endpoints/{id}/secret", p.revealSecret)
	post("/endpoints/{id}/rotate", p.rotateSecret)
	post("/endpoints/{id}/test", p.testEndpoint)
	post("/endpoints/{id}/recover", p.recoverEndpoint)
	get("/deliveries", p.listDeliveries)
	get("/deliveries/{id}", p.showDelivery)
	post("/deliveries/{id}/resend", p.resendDelivery)
	get("/event-types", p.eventTypes)
	get("/verify", p.verifyHelp)
	p.mux = m
}

// writable wraps a page that only leads to a change (a form): a read-only
// session is refused it, the way authed refuses it every POST.
func (p *Portal) writable(h func(w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if sessionOf(r).ReadOnly {
			p.pages.errorPage(w, r, http.StatusForbidden, "Read-only session", "This session can look but not change anything.")
			return nil
		}
		return h(w, r)
	}
}

// redirect answers a form post with a See Other to a portal path.
func (p *Portal) redirect(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, p.c.Prefix+path, http.StatusSeeOther)
}

// ---------------------------------------------------------------------------
// Endpoints.

// endpointRow is one line of the endpoint list.
type endpointRow struct {
	outbox.Endpoint
	Summary outbox.EndpointSummary
}

// StateLabel is how the list names the endpoint's state.
func (e endpointRow) StateLabel() string { l, _ := endpointState(e.Endpoint); return l }

// StateClass is the style of the state's badge.
func (e endpointRow) StateClass() string { _, c := endpointState(e.Endpoint); return c }

func endpointState(e outbox.Endpoint) (state, class string) {
	switch {
	case !e.Enabled:
		return "Disabled", "off"
	case e.ConsecutiveFailures > 0:
		return "Failing", "bad"
	}
	return "Enabled", "ok"
}

type endpointsData struct {
	Rows []endpointRow
	Next string
}

func (endpointsData) page() (string, string) { return "Endpoints", "endpoints" }

func (p *Portal) listEndpoints(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	eps, next, err := s.store.ListEndpoints(r.Context(), outbox.EndpointFilter{After: r.URL.Query().Get("after"), Limit: 100})
	if errors.Is(err, outbox.ErrBadCursor) {
		p.pages.errorPage(w, r, http.StatusBadRequest, "Bad link", "That page link is not valid.")
		return nil
	}
	if err != nil {
		return err
	}
	ids := make([]string, len(eps))
	for i, e := range eps {
		ids[i] = e.ID
	}
	sums, err := s.store.EndpointSummaries(r.Context(), ids)
	if err != nil {
		return err
	}
	d := endpointsData{Next: next}
	for _, e := range eps {
		d.Rows = append(d.Rows, endpointRow{Endpoint: e, Summary: sums[e.ID]})
	}
	p.pages.render(w, r, http.StatusOK, "endpoints", s, d)
	return nil
}

// formData is the create and edit form.
type formData struct {
	Edit       bool
	ID         string
	URL        string
	Desc       string
	Types      []string
	RateLimit  string
	Catalog    []outbox.EventType
	Error      string
	ErrorField string
}

func (f formData) page() (string, string) {
	if f.Edit {
		return "Edit endpoint", "endpoints"
	}
	return "Add an endpoint", "endpoints"
}

func (p *Portal) newEndpoint(w http.ResponseWriter, r *http.Request) error {
	return p.renderForm(w, r, http.StatusOK, formData{})
}

// renderForm shows the endpoint form f with the event-type catalog.
func (p *Portal) renderForm(w http.ResponseWriter, r *http.Request, status int, f formData) error {
	s := sessionOf(r)
	catalog, err := s.store.ListEventTypes(r.Context())
	if err != nil {
		return err
	}
	f.Catalog = catalog
	p.pages.render(w, r, status, "form", s, f)
	return nil
}

// readForm reads the endpoint form's fields.
func readForm(r *http.Request) (f formData, rateLimit int, err error) {
	f.URL = strings.TrimSpace(r.PostFormValue("url"))
	f.Desc = strings.TrimSpace(r.PostFormValue("description"))
	for _, t := range r.PostForm["event_types"] {
		for _, x := range strings.Split(t, ",") {
			if x = strings.TrimSpace(x); x != "" {
				f.Types = append(f.Types, x)
			}
		}
	}
	f.RateLimit = strings.TrimSpace(r.PostFormValue("rate_limit"))
	if f.RateLimit != "" {
		n, convErr := strconv.Atoi(f.RateLimit)
		if convErr != nil || n < 0 {
			return f, 0, &outbox.FieldError{Field: "rate_limit", Reason: "must be a whole number of requests per second (0 or empty: no limit)"}
		}
		rateLimit = n
	}
	return f, rateLimit, nil
}

// formError re-renders the form with a refused field's message, or
// returns err when it is not about the input.
func (p *Portal) formError(w http.ResponseWriter, r *http.Request, f formData, err error) error {
	var fe *outbox.FieldError
	var tooMany *outbox.TooManyEndpointsError
	switch {
	case errors.As(err, &fe):
		f.Error, f.ErrorField = fe.Error(), fe.Field
	case errors.As(err, &tooMany):
		f.Error = tooMany.Error()
	default:
		return err
	}
	return p.renderForm(w, r, http.StatusBadRequest, f)
}

func (p *Portal) createEndpoint(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	f, rate, err := readForm(r)
	if err != nil {
		return p.formError(w, r, f, err)
	}
	res, err := s.endpoints.Create(r.Context(), endpoint.Input{URL: f.URL, Description: f.Desc, EventTypes: f.Types, RateLimit: rate})
	if err != nil {
		return p.formError(w, r, f, err)
	}
	p.redirect(w, r, "/endpoints/"+res.ID+"?notice=created")
	return nil
}

func (p *Portal) editEndpoint(w http.ResponseWriter, r *http.Request) error {
	e, err := sessionOf(r).store.GetEndpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	f := formData{Edit: true, ID: e.ID, URL: e.URL, Desc: e.Description, Types: e.EventTypes}
	if e.RateLimit > 0 {
		f.RateLimit = strconv.Itoa(e.RateLimit)
	}
	return p.renderForm(w, r, http.StatusOK, f)
}

func (p *Portal) updateEndpoint(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	id := r.PathValue("id")
	f, rate, err := readForm(r)
	f.Edit, f.ID = true, id
	if err != nil {
		return p.formError(w, r, f, err)
	}
	types := f.Types
	if types == nil {
		types = []string{}
	}
	_, err = s.endpoints.Update(r.Context(), id, endpoint.Patch{URL: &f.URL, Description: &f.Desc, EventTypes: &types, RateLimit: &rate})
	if err != nil {
		return p.formError(w, r, f, err)
	}
	p.redirect(w, r, "/endpoints/"+id+"?notice=saved")
	return nil
}

func (p *Portal) setEnabled(on bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		s := sessionOf(r)
		id := r.PathValue("id")
		if _, err := s.endpoints.Update(r.Context(), id, endpoint.Patch{Enabled: &on}); err != nil {
			return err
		}
		notice := "disabled"
		if on {
			notice = "enabled"
		}
		p.redirect(w, r, "/endpoints/"+id+"?notice="+notice)
		return nil
	}
}

type deleteData struct{ Endpoint outbox.Endpoint }

func (deleteData) page() (string, string) { return "Delete endpoint", "endpoints" }

func (p *Portal) confirmDelete(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	e, err := s.store.GetEndpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	p.pages.render(w, r, http.StatusOK, "delete", s, deleteData{Endpoint: e})
	return nil
}

func (p *Portal) deleteEndpoint(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	if err := s.endpoints.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	p.redirect(w, r, "/endpoints?notice=deleted")
	return nil
}

// endpointData is the endpoint page.
type endpointData struct {
	endpoint.Details
	State, StateClass string
	Catalog           []outbox.EventType
	// TestTypes are the types the Test form offers.
	TestTypes []string
	// OldSecretEnds says when each old secret stops signing.
	OldSecretEnds []time.Time
	// Secret is shown after Reveal or Rotate; Rotated says which.
	Secret  string
	Rotated bool
	// Test is the result of the Test button.
	Test      *relay.TestResult
	TestError string
	Graces    []graceOption
}

func (endpointData) page() (string, string) { return "Endpoint", "endpoints" }

type graceOption struct {
	Value, Label string
	Default      bool
}

// graces are the rotation grace windows the form offers.
var graces = []graceOption{
	{"0s", "none: the old secret stops signing now (it leaked)", false},
	{"1h", "1 hour", false},
	{"24h", "24 hours", true},
	{"72h", "3 days", false},
	{"168h", "7 days", false},
}

// loadEndpoint reads what the endpoint page shows.
func (p *Portal) loadEndpoint(r *http.Request, id string) (endpointData, error) {
	s := sessionOf(r)
	det, err := s.endpoints.Get(r.Context(), id)
	if err != nil {
		return endpointData{}, err
	}
	catalog, err := s.store.ListEventTypes(r.Context())
	if err != nil {
		return endpointData{}, err
	}
	ends, err := s.store.SecretWindows(r.Context(), id)
	if err != nil {
		return endpointData{}, err
	}
	d := endpointData{Details: det, Catalog: catalog, OldSecretEnds: ends, Graces: graces}
	d.State, d.StateClass = endpointState(det.Endpoint)
	if d.State == "Disabled" && det.DisabledReason != "" {
		d.State = "Disabled: " + det.DisabledReason
	}
	if len(det.EventTypes) > 0 {
		d.TestTypes = det.EventTypes
	} else {
		for _, et := range catalog {
			d.TestTypes = append(d.TestTypes, et.Name)
		}
	}
	return d, nil
}

// renderEndpoint shows endpoint id's page, after set has filled in what
// the action that led there has to say.
func (p *Portal) renderEndpoint(w http.ResponseWriter, r *http.Request, id string, set func(d *endpointData)) error {
	d, err := p.loadEndpoint(r, id)
	if err != nil {
		return err
	}
	set(&d)
	p.pages.render(w, r, http.StatusOK, "endpoint", nil, d)
	return nil
}

func (p *Portal) showEndpoint(w http.ResponseWriter, r *http.Request) error {
	return p.renderEndpoint(w, r, r.PathValue("id"), func(*endpointData) {})
}

func (p *Portal) revealSecret(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	secrets, err := sessionOf(r).store.EndpointSecrets(r.Context(), id)
	if err != nil {
		return err
	}
	return p.renderEndpoint(w, r, id, func(d *endpointData) { d.Secret = secrets[0] })
}

func (p *Portal) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	grace, err := endpoint.ParseGrace(r.PostFormValue("grace"))
	if err != nil {
		return err
	}
	e, err := sessionOf(r).endpoints.RotateSecret(r.Context(), id, endpoint.Rotation{Grace: &grace})
	if err != nil {
		return err
	}
	return p.renderEndpoint(w, r, id, func(d *endpointData) { d.Secret, d.Rotated = e.Secret, true })
}

func (p *Portal) testEndpoint(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	id := r.PathValue("id")
	res, testErr := s.endpoints.TestEvent(r.Context(), id, r.PostFormValue("event_type"))
	var fe *outbox.FieldError
	switch {
	case testErr == nil:
	case errors.As(testErr, &fe):
	default:
		return testErr
	}
	d, err := p.loadEndpoint(r, id)
	if err != nil {
		return err
	}
	if testErr != nil {
		d.TestError = fe.Error()
	} else {
		d.Test = &res
	}
	if r.Header.Get("X-Portal-Fragment") == "test" {
		p.pages.fragment(w, r, http.StatusOK, "endpoint", "test_result", s, d)
		return nil
	}
	p.pages.render(w, r, http.StatusOK, "endpoint", s, d)
	return nil
}

func (p *Portal) recoverEndpoint(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	id := r.PathValue("id")
	since, err := parseTime("since", r.PostFormValue("since"))
	if err != nil {
		return err
	}
	if since == nil {
		return &outbox.FieldError{Field: "since", Reason: "is required: the time from which failed deliveries are sent again"}
	}
	n, err := s.store.RecoverEndpoint(r.Context(), id, *since, time.Now())
	if err != nil {
		return err
	}
	p.redirect(w, r, "/endpoints/"+id+"?notice=recovered&n="+strconv.Itoa(n))
	return nil
}

// parseTime reads a time field: a datetime-local value (taken as UTC) or
// RFC 3339; empty is nil.
func parseTime(field, v string) (*time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return &t, nil
		}
	}
	return nil, &outbox.FieldError{Field: field, Reason: "is not a time like 2024-05-01T12:00 (UTC)"}
}

// ---------------------------------------------------------------------------
// Deliveries.

// deliveryFilter is the delivery log's filter form, as given.
type deliveryFilter struct {
	State, EndpointID, EventType, Since, Until string
}

// Query is the filter as a query string (for the pager's links).
func (f deliveryFilter) Query() string { return f.values().Encode() }

func (f deliveryFilter) values() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"state": f.State, "endpoint": f.EndpointID, "event_type": f.EventType, "since": f.Since, "until": f.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

type deliveriesData struct {
	Filter     deliveryFilter
	States     []string
	Deliveries []outbox.Delivery
	Endpoints  []outbox.Endpoint
	URLs       map[string]string
	Catalog    []outbox.EventType
	NextQuery  string
	Paged      bool
	Error      string
}

func (deliveriesData) page() (string, string) { return "Delivery log", "deliveries" }

func (p *Portal) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	q := r.URL.Query()
	d := deliveriesData{
		Filter: deliveryFilter{State: q.Get("state"), EndpointID: q.Get("endpoint"), EventType: q.Get("event_type"),
			Since: q.Get("since"), Until: q.Get("until")},
		States: []string{outbox.StatePending, outbox.StateInFlight, outbox.StateDelivered, outbox.StateDead, outbox.StateCancelled},
		URLs:   map[string]string{},
		Paged:  q.Get("after") != "",
	}
	f := outbox.DeliveryFilter{After: q.Get("after"), Limit: 50}
	if d.Filter.State != "" {
		f.State = &d.Filter.State
	}
	if d.Filter.EndpointID != "" {
		f.EndpointID = &d.Filter.EndpointID
	}
	if d.Filter.EventType != "" {
		f.EventType = &d.Filter.EventType
	}
	var err error
	if f.Since, err = parseTime("since", d.Filter.Since); err == nil {
		f.Until, err = parseTime("until", d.Filter.Until)
	}
	var next string
	if err == nil {
		d.Deliveries, next, err = s.store.ListDeliveries(r.Context(), f)
	}
	var fe *outbox.FieldError
	switch {
	case err == nil:
	case errors.As(err, &fe):
		d.Error = fe.Error()
	case errors.Is(err, outbox.ErrBadCursor):
		d.Error = "That page link is not valid: start from the newest."
	default:
		return err
	}
	if d.Endpoints, _, err = s.store.ListEndpoints(r.Context(), outbox.EndpointFilter{Limit: 500}); err != nil {
		return err
	}
	for _, e := range d.Endpoints {
		d.URLs[e.ID] = e.URL
	}
	if d.Catalog, err = s.store.ListEventTypes(r.Context()); err != nil {
		return err
	}
	if next != "" {
		nq := d.Filter.values()
		nq.Set("after", next)
		d.NextQuery = nq.Encode()
	}
	status := http.StatusOK
	if d.Error != "" {
		status = http.StatusBadRequest
	}
	p.pages.render(w, r, status, "deliveries", s, d)
	return nil
}

type deliveryData struct {
	Delivery    outbox.Delivery
	Event       outbox.StoredEvent
	Attempts    []outbox.Attempt
	EndpointURL string
}

func (deliveryData) page() (string, string) { return "Delivery", "deliveries" }

func deliveryID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, outbox.ErrNotFound
	}
	return id, nil
}

func (p *Portal) showDelivery(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	id, err := deliveryID(r)
	if err != nil {
		return err
	}
	var d deliveryData
	if d.Delivery, err = s.store.GetDelivery(r.Context(), id); err != nil {
		return err
	}
	if d.Event, err = s.store.GetEvent(r.Context(), d.Delivery.EventID); err != nil {
		return err
	}
	if d.Attempts, err = s.store.ListAttempts(r.Context(), id); err != nil {
		return err
	}
	e, err := s.store.GetEndpoint(r.Context(), d.Delivery.EndpointID)
	switch {
	case err == nil:
		d.EndpointURL = e.URL
	case !errors.Is(err, outbox.ErrNotFound):
		return err
	}
	p.pages.render(w, r, http.StatusOK, "delivery", s, d)
	return nil
}

func (p *Portal) resendDelivery(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	id, err := deliveryID(r)
	if err != nil {
		return err
	}
	d, err := s.store.GetDelivery(r.Context(), id)
	if err != nil {
		return err
	}
	res, err := s.store.ReplayEvent(r.Context(), d.EventID, d.EndpointID)
	if err != nil {
		return err
	}
	if len(res.Deliveries) == 0 && len(res.Skipped) > 0 {
		return &outbox.StateError{DeliveryID: id, State: res.Skipped[0].Reason}
	}
	p.redirect(w, r, "/deliveries/"+strconv.FormatInt(id, 10)+"?notice=resent")
	return nil
}

// ---------------------------------------------------------------------------
// Event types and verification help.

type eventTypesData struct{ Catalog []outbox.EventType }

func (eventTypesData) page() (string, string) { return "Event types", "event-types" }

func (p *Portal) eventTypes(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	catalog, err := s.store.ListEventTypes(r.Context())
	if err != nil {
		return err
	}
	p.pages.render(w, r, http.StatusOK, "event-types", s, eventTypesData{Catalog: catalog})
	return nil
}

type verifyData struct {
	Endpoints []outbox.Endpoint
	// Endpoint is the one the samples are written for ("" without any).
	Endpoint outbox.Endpoint
	Path     string
}

func (verifyData) page() (string, string) { return "Verifying signatures", "verify" }

func (p *Portal) verifyHelp(w http.ResponseWriter, r *http.Request) error {
	s := sessionOf(r)
	eps, _, err := s.store.ListEndpoints(r.Context(), outbox.EndpointFilter{Limit: 500})
	if err != nil {
		return err
	}
	d := verifyData{Endpoints: eps, Path: "/webhooks"}
	want := r.URL.Query().Get("endpoint")
	for i, e := range eps {
		if e.ID == want || (want == "" && i == 0) {
			d.Endpoint = e
		}
	}
	if want != "" && d.Endpoint.ID == "" {
		return outbox.ErrNotFound
	}
	if u, err := url.Parse(d.Endpoint.URL); err == nil && u.Path != "" {
		d.Path = u.Path
	}
	p.pages.render(w, r, http.StatusOK, "verify", s, d)
	return nil
}
