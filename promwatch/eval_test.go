package promwatch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/promql"
)

func TestToValue(t *testing.T) {
	one := func(v float64) []Element { return []Element{{V: v}} }
	cases := []struct {
		name string
		in   Result
		want measure.Value
	}{
		{"one element", Result{Vector: one(6)}, measure.Value{V: 6}},
		{"a zero is a number", Result{Vector: one(0)}, measure.Value{V: 0}},
		{"negative", Result{Vector: one(-1.5)}, measure.Value{V: -1.5}},
		{"nil vector", Result{}, measure.Value{Gap: "no series"}},
		{"empty vector", Result{Vector: []Element{}}, measure.Value{Gap: "no series"}},
		{"warnings do not make gaps", Result{Vector: one(2), Warnings: []string{"w"}}, measure.Value{V: 2}},
		{"two", Result{Vector: append(one(1), one(2)...)}, measure.Value{Gap: "2 series (aggregate with sum(…) or max(…))"}},
		{"three", Result{Vector: make([]Element, 3)}, measure.Value{Gap: "3 series (aggregate with sum(…) or max(…))"}},
		{"NaN", Result{Vector: one(math.NaN())}, measure.Value{Gap: "NaN"}},
		{"+Inf", Result{Vector: one(math.Inf(1))}, measure.Value{Gap: "+Inf"}},
		{"-Inf", Result{Vector: one(math.Inf(-1))}, measure.Value{Gap: "-Inf"}},
		{"error wins over a vector", Result{Vector: one(1), Err: errors.New("x")}, measure.Value{Gap: "x"}},
		{"source error", Result{Err: &SourceError{Source: "prometheus http://p:9090", Reason: "HTTP 503"}}, measure.Value{Gap: "HTTP 503"}},
		{"page error", Result{Err: &SourceError{Source: "scrape http://a:8000/metrics", Where: "a:8000", Reason: "timeout"}}, measure.Value{Gap: "a:8000: timeout"}},
		{"query error", Result{Err: &promql.Error{Col: 3, Msg: "binary operator > is not supported"}}, measure.Value{Gap: "bad query: column 3: binary operator > is not supported"}},
		{"wrapped query error", Result{Err: fmt.Errorf("series waiting: %w", &promql.Error{Col: 1, Msg: "empty query"})}, measure.Value{Gap: "bad query: column 1: empty query"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ToValue(c.in); got != c.want {
				t.Errorf("ToValue = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestShortError(t *testing.T) {
	urlErr := func(err error) error {
		return &url.Error{Op: "Post", URL: "http://prometheus:9090/api/v1/query", Err: err}
	}
	dial := func(errno syscall.Errno) error {
		return urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)})
	}
	cases := []struct {
		err  error
		want string
	}{
		{dial(syscall.ECONNREFUSED), "connection refused"},
		{dial(syscall.ECONNRESET), "connection reset"},
		{dial(syscall.EHOSTUNREACH), "host unreachable"},
		{dial(syscall.ENETUNREACH), "network unreachable"},
		{urlErr(context.DeadlineExceeded), "timeout"},
		{urlErr(context.Canceled), "canceled"},
		{urlErr(&net.DNSError{Name: "prometheus", Err: "no such host", IsNotFound: true}), "no such host prometheus"},
		{urlErr(&net.DNSError{Name: "prometheus", Err: "i/o timeout", IsTimeout: true}), "DNS timeout"},
		{urlErr(&net.DNSError{Name: "prometheus", Err: "server misbehaving"}), "DNS: server misbehaving"},
		{urlErr(x509.UnknownAuthorityError{}), "TLS: certificate signed by an unknown authority"},
		{urlErr(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "p"}), "TLS: certificate not valid for this host"},
		{urlErr(io.EOF), "connection closed by the server"},
		{urlErr(http.ErrSchemeMismatch), "the server speaks plain HTTP (use http://)"},
		{urlErr(errors.New("something odd")), "something odd"},
		{errors.New(strings.Repeat("long ", 40)), strings.Repeat("long ", 24)[:119] + "…"},
		{errors.New("two\nlines"), "two lines"},
		{nil, ""},
	}
	for _, c := range cases {
		if got := ShortError(c.err); got != c.want {
			t.Errorf("ShortError(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestSourceErrorUnwraps(t *testing.T) {
	err := &SourceError{Source: "scrape http://a/metrics", Reason: "timeout", Err: context.DeadlineExceeded}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("SourceError does not unwrap")
	}
	if got := fmt.Sprint(err); got != "scrape http://a/metrics: timeout" {
		t.Errorf("Error() = %q", got)
	}
}
