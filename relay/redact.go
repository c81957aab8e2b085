package relay

import (
	"net/url"
)

// RedactURL returns the form of an endpoint URL that may be logged or
// written into operational events and attempt errors:
// scheme://host[:port]/path. User info, the query and the fragment are
// dropped, since they are where tokens are usually carried. A value that
// does not parse as an absolute URL is replaced by "(invalid URL)".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "(invalid URL)"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}
