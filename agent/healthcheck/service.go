package healthcheck

import (
	"fmt"
	"net/http"
	"strconv"
)

// Answer is what a health-check node port answers for one Service.
type Answer struct {
	Namespace, Name string
	// LocalEndpoints is the count of the Service's ready endpoints on
	// this node.
	LocalEndpoints int
	// ProxyHealthy reports whether the node's service proxy (the agent's
	// service programming) is up to date (kube-proxy's
	// serviceProxyHealthy).
	ProxyHealthy bool
}

// Status is 200 when the node has a local endpoint and its service proxy
// is healthy, 503 otherwise.
func (a Answer) Status() int {
	if a.LocalEndpoints != 0 && a.ProxyHealthy {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// Body is kube-proxy's JSON body, byte for byte: tab-indented, no
// trailing newline.
func (a Answer) Body() string {
	return fmt.Sprintf("{\n\t\"service\": {\n\t\t\"namespace\": %q,\n\t\t\"name\": %q\n\t},\n\t\"localEndpoints\": %d,\n\t\"serviceProxyHealthy\": %v\n}",
		a.Namespace, a.Name, a.LocalEndpoints, a.ProxyHealthy)
}

// Write answers a request: kube-proxy's headers (Content-Type,
// X-Content-Type-Options, and X-Load-Balancing-Endpoint-Weight with the
// local endpoint count, which weighted load balancers read), status and
// body.
func (a Answer) Write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(a.LocalEndpoints))
	w.WriteHeader(a.Status())
	fmt.Fprint(w, a.Body())
}

// serviceHandler answers every request (any method and path, as
// kube-proxy) on one Service's health-check port with what answer says
// now; ok false (the Service is gone, its listener closing) answers 503
// with no body.
type serviceHandler struct {
	answer func() (Answer, bool)
}

func (h serviceHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	a, ok := h.answer()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	a.Write(w)
}
