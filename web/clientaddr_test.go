package web

import (
	"fmt"
	"net/http/httptest"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                     "[]",
		" , ":                                  "[]",
		"10.0.0.0/8":                           "[10.0.0.0/8]",
		"10.1.2.3/8, 192.168.1.7 ,fd00::/8":    "[10.0.0.0/8 192.168.1.7/32 fd00::/8]",
		"::ffff:10.0.0.1,2001:db8::1":          "[10.0.0.1/32 2001:db8::1/128]",
		"10.0.0.0/33":                          "error",
		"proxy.internal":                       "error",
		"10.0.0.0/8;192.168.0.0/16":            "error",
		"10.0.0.0/8, 172.16.0.0/12, 127.0.0.1": "[10.0.0.0/8 172.16.0.0/12 127.0.0.1/32]",
	} {
		got, err := ParseTrustedProxies(in)
		s := fmt.Sprint(got)
		if err != nil {
			s = "error"
		}
		if s != want {
			t.Errorf("ParseTrustedProxies(%q) = %s (%v), want %s", in, s, err, want)
		}
	}
}

// TestClientKey covers the trusted-proxy rule: X-Forwarded-For counts
// only from a trusted peer, and then its right-most address that is not a
// trusted proxy names the client.
func TestClientKey(t *testing.T) {
	t.Parallel()
	trusted, err := ParseTrustedProxies("10.0.0.0/8, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"an untrusted peer is the client", "203.0.113.5:4711", []string{"198.51.100.7"}, "203.0.113.5"},
		{"a trusted peer without the header", "10.0.0.1:4711", nil, "10.0.0.1"},
		{"a trusted peer names the client", "10.0.0.1:4711", []string{"198.51.100.7"}, "198.51.100.7"},
		{"what the client wrote on the left is ignored", "10.0.0.1:4711", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"a chain of trusted proxies", "10.0.0.1:4711", []string{"6.6.6.6, 198.51.100.7, 10.0.0.2,10.9.9.9"}, "198.51.100.7"},
		{"several header lines", "10.0.0.1:4711", []string{"6.6.6.6", "198.51.100.7, 10.0.0.3"}, "198.51.100.7"},
		{"only trusted addresses: the left-most", "10.0.0.1:4711", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
		{"garbage stops the walk at the last trusted hop", "10.0.0.1:4711", []string{"198.51.100.7, garbage, 10.0.0.2"}, "10.0.0.2"},
		{"an address with a port", "10.0.0.1:4711", []string{"198.51.100.7:5555"}, "198.51.100.7"},
		{"an IPv6 client counts by its /64", "10.0.0.1:4711", []string{"[2001:db8:1:2:3:4:5:6]:80"}, "2001:db8:1:2::/64"},
		{"an IPv6 peer", "[2001:db8:1:2::9]:4711", []string{"198.51.100.7"}, "2001:db8:1:2::/64"},
		{"a trusted IPv6 proxy", "[fd00::1]:4711", []string{"198.51.100.7"}, "198.51.100.7"},
		{"an IPv4-mapped trusted peer", "[::ffff:10.0.0.1]:4711", []string{"198.51.100.7"}, "198.51.100.7"},
		{"an untrusted peer that claims a trusted address", "203.0.113.5:4711", []string{"10.0.0.1"}, "203.0.113.5"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientKey(r, trusted); got != tc.want {
			t.Errorf("%s: peer %s, X-Forwarded-For %q: client %s, want %s", tc.name, tc.peer, tc.xff, got, tc.want)
		}
		bare := httptest.NewRequest("GET", "/", nil)
		bare.RemoteAddr = tc.peer
		if got, want := clientKey(r, nil), clientKey(bare, nil); got != want {
			t.Errorf("%s: without trusted proxies the client is %s, want the peer %s", tc.name, got, want)
		}
	}
}
