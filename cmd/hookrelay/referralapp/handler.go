package referralapp

import (
	"encoding/json"
	"errors"
	"net/http"
)

// maxRequestBytes caps a signup request body.
const maxRequestBytes = 4 << 10

// SignupRequest is the body of POST /signup.
type SignupRequest struct {
	Email      string `json:"email"`
	ReferredBy string `json:"referred_by"`
}

// Handler serves the referral app's tiny HTTP API:
//
//	POST   /signup {"email": "...", "referred_by": "..."}  → 201 with the participant
//	DELETE /signup/{email}                                 → 204
//
// Errors are JSON {"error": "..."}: 400 for a bad request or unknown
// referrer, 404 for an unknown participant, 409 for an email already
// signed up.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signup", func(w http.ResponseWriter, r *http.Request) {
		var req SignupRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON {\"email\", \"referred_by\"}: " + err.Error()})
			return
		}
		p, err := a.Signup(r.Context(), req.Email, req.ReferredBy)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, p)
	})
	mux.HandleFunc("DELETE /signup/{email}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.RemoveSignup(r.Context(), r.PathValue("email")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	msg := "internal error"
	switch {
	case errors.Is(err, ErrInvalidEmail), errors.Is(err, ErrUnknownReferrer):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, ErrEmailTaken):
		status, msg = http.StatusConflict, err.Error()
	case errors.Is(err, ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone; nothing to do
}
