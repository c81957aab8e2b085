package httpapi

// RouteAccess lists every /v1 route ("METHOD pattern") with who may call
// it: "admin", "tenant-read" or "tenant-write".
func RouteAccess() map[string]string {
	out := map[string]string{}
	for _, rt := range (&server{}).routes() {
		out[rt.method+" "+rt.pattern] = map[access]string{adminOnly: "admin", tenantRead: "tenant-read", tenantWrite: "tenant-write"}[rt.access]
	}
	return out
}
