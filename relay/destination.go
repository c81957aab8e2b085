package relay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/destguard"
)

// urlCheckTimeout bounds the host lookup of CheckEndpointURL.
const urlCheckTimeout = 5 * time.Second

// CheckEndpointURL judges an endpoint URL, when it is registered or
// changed, as deliveries through s would judge it; the CLI and the admin
// API both call it before storing.
//
// It first runs outbox.ValidateURL and returns its error. It returns an
// *outbox.FieldError for field "url" when the destination guard would
// refuse every delivery: the host is an IP literal in a refused
// range, or a name whose addresses are all refused (through an outbound
// proxy: any of them, as deliveries then refuse it). The message says why
// and names HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS and
// HOOKRELAY_ALLOWED_DESTINATION_CIDRS.
//
// A name that cannot be looked up now is accepted, since endpoints are
// often registered before their DNS exists, and warning says so; the
// dial-time guard checks each delivery's address regardless. With no
// guard, private destinations allowed or a nil s there is no lookup.
func (s *Sender) CheckEndpointURL(ctx context.Context, raw string) (warning string, err error) {
	if err := outbox.ValidateURL(raw); err != nil {
		return "", err
	}
	if s == nil || s.guard == nil || s.guard.AllowsAll() {
		return "", nil
	}
	u, _ := url.Parse(raw) // ValidateURL parsed it
	host := u.Hostname()
	ctx, cancel := context.WithTimeout(ctx, urlCheckTimeout)
	defer cancel()
	if s.proxied {
		err = s.guard.CheckHost(ctx, nil, host)
	} else {
		err = s.guard.CheckHostAny(ctx, nil, host)
	}
	var (
		refused     *destguard.RefusedError
		hostRefused *destguard.HostRefusedError
	)
	const allow = "set HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true or add the address to HOOKRELAY_ALLOWED_DESTINATION_CIDRS to allow it"
	switch {
	case err == nil:
		return "", nil
	case errors.As(err, &hostRefused):
		list := ""
		for i, r := range hostRefused.Refused {
			if i > 0 {
				list += ", "
			}
			list += r.Addr.String() + ": " + r.Reason
		}
		how := "resolves only to refused addresses"
		if !hostRefused.All {
			how = "resolves to refused addresses, which deliveries through HOOKRELAY_HTTP_PROXY refuse"
		}
		return "", &outbox.FieldError{Field: "url", Reason: fmt.Sprintf(
			"host %s %s (%s), so every delivery would fail; %s", host, how, list, allow)}
	case errors.As(err, &refused):
		return "", &outbox.FieldError{Field: "url", Reason: fmt.Sprintf(
			"%s is a refused destination (%s), so every delivery would fail; %s", refused.Addr, refused.Reason, allow)}
	}
	return fmt.Sprintf("url: host %s could not be looked up now (%v); the endpoint is saved and every delivery checks the address it connects to", host, err), nil
}
