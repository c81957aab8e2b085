package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/outbox"
)

// decodeBody reads one JSON object from r's body (at most limit bytes) into
// v, rejecting unknown fields, wrong types and trailing data with 400 errors
// that name the field. An empty body is an error unless allowEmpty. The
// body must be valid UTF-8: encoding/json would quietly replace invalid
// bytes with U+FFFD, storing text the client never sent.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, allowEmpty bool, v any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return err
		}
		return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: "the body could not be read: " + err.Error()}
	}
	if i := invalidUTF8At(raw); i >= 0 {
		return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: fmt.Sprintf("the body is not valid UTF-8 (byte %d): JSON text must be UTF-8", i)}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && allowEmpty {
			return nil
		}
		return jsonError(err)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: "the body must hold one JSON object and nothing after it"}
	}
	return nil
}

// invalidUTF8At returns the offset of the first byte of b that is not part
// of valid UTF-8, or -1.
func invalidUTF8At(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// jsonError translates a decoding error.
func jsonError(err error) error {
	var (
		maxBytes *http.MaxBytesError
		syntax   *json.SyntaxError
		typeErr  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxBytes):
		return err
	case errors.Is(err, io.EOF):
		return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: "the body is empty: send a JSON object"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: "the body ends in the middle of a JSON value"}
	case errors.As(err, &syntax):
		return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: fmt.Sprintf("invalid JSON at byte %d: %s", syntax.Offset, syntax.Error())}
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: "the body must be a JSON object, not " + typeErr.Value}
		}
		return &apiError{status: http.StatusBadRequest, code: "invalid_field", field: typeErr.Field,
			msg: fmt.Sprintf("%s: must be %s, not %s", typeErr.Field, jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, uerr := strconv.Unquote(name)
		if uerr != nil {
			field = name
		}
		return &apiError{status: http.StatusBadRequest, code: "unknown_field", field: field, msg: fmt.Sprintf("%s: unknown field", field)}
	}
	return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: "invalid JSON: " + err.Error()}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "float64":
		return "a number"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "a " + kind
}

// query reads validated query parameters; the first problem is kept.
type query struct {
	v   url.Values
	err error
}

func newQuery(r *http.Request) *query { return &query{v: r.URL.Query()} }

func (q *query) fail(field, format string, args ...any) {
	if q.err == nil {
		q.err = badField(field, format, args...)
	}
}

// str returns the parameter, or nil when absent. Text PostgreSQL cannot
// hold (NUL, invalid UTF-8) is refused naming the parameter.
func (q *query) str(name string) *string {
	if !q.v.Has(name) {
		return nil
	}
	s := q.v.Get(name)
	if msg := badText(s); msg != "" {
		q.fail(name, "%s", msg)
		return nil
	}
	return &s
}

// badText says why s cannot be stored or compared as PostgreSQL text, or "".
func badText(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "must not contain NUL characters"
	}
	return ""
}

func (q *query) boolean(name string) *bool {
	s := q.str(name)
	if s == nil {
		return nil
	}
	b, err := strconv.ParseBool(*s)
	if err != nil {
		q.fail(name, "must be true or false")
		return nil
	}
	return &b
}

func (q *query) limit() int {
	s := q.str("limit")
	if s == nil {
		return 0
	}
	n, err := strconv.Atoi(*s)
	if err != nil || n < 1 || n > 500 {
		q.fail("limit", "must be a whole number from 1 to 500")
		return 0
	}
	return n
}

func (q *query) time(name string) *time.Time {
	s := q.str(name)
	if s == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		q.fail(name, "must be an RFC 3339 time like 2024-05-01T12:00:00Z")
		return nil
	}
	return &t
}

func (q *query) id(name string) *int64 {
	s := q.str(name)
	if s == nil {
		return nil
	}
	n, err := strconv.ParseInt(*s, 10, 64)
	if err != nil || n < 1 {
		q.fail(name, "must be a positive integer id")
		return nil
	}
	return &n
}

func (q *query) cursor() string {
	c := q.v.Get("cursor")
	if len(c) > 256 || badText(c) != "" {
		q.fail("cursor", "is not a cursor returned by this API")
		return ""
	}
	return c
}

// pathID parses a bigint id from the path; anything else is not found.
func pathID(r *http.Request) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || n < 1 {
		return 0, outbox.ErrNotFound
	}
	return n, nil
}

// noNUL rejects text PostgreSQL cannot store: a NUL character.
func noNUL(field, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return badField(field, "must not contain NUL characters")
	}
	return nil
}

// jsonHasNUL reports whether valid JSON text holds a \u0000 escape, which
// PostgreSQL's jsonb cannot store.
func jsonHasNUL(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) && string(b[i+2:i+6]) == "0000" {
			return true
		}
		i++ // skip the escaped character
	}
	return false
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
