package tunnel_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestNoContentTypeWithoutBody: a reply whose status has no body (204,
// 304) gets no Content-Type the handler or service did not give, as
// OPTIONS answered 204 through a forward route did.
func TestNoContentTypeWithoutBody(t *testing.T) {
	_, s, c := pair(t)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(be.Close)
	if err := c.reg.Forward("app", be.URL); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodOptions, s.httpURL+"/client/c1/app/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Allow") != "GET, OPTIONS" {
		t.Fatalf("OPTIONS through a route: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if ct, ok := resp.Header["Content-Type"]; ok {
		t.Errorf("a 204 got Content-Type %q", ct)
	}
}
