//go:build contract

package main

// The contract test: built with -tags contract (.ci/run always does), every
// exchange of the end-to-end suite through Go's default HTTP client is
// checked against openapi.yaml by a validator that is not kin-openapi
// (github.com/pb33f/libopenapi-validator), and the suite fails if the server
// answered anything the spec does not say. It is behind a build tag because
// the validator is a large dependency a newcomer's first go test ./... need
// not build.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"
)

func init() {
	doc, err := libopenapi.NewDocument(specYAML)
	if err != nil {
		panic(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		panic(fmt.Sprint(errs))
	}
	c := &contract{v: v, next: http.DefaultTransport}
	http.DefaultClient.Transport = c
	afterRun = c.report
}

type contract struct {
	v    validator.Validator
	next http.RoundTripper

	mu         sync.Mutex
	checked    int
	violations []string
}

func (c *contract) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	res, err := c.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	resBody, err := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	if err != nil {
		return res, nil
	}
	c.check(req, reqBody, res, resBody)
	return res, nil
}

// check holds an exchange to the spec: the answer must be one the
// operation declares, with its headers and body; a request the spec forbids
// must not be accepted. A request no operation matches must get 404 or 405
// with the shared error body.
func (c *contract) check(req *http.Request, reqBody []byte, res *http.Response, resBody []byte) {
	if strings.HasPrefix(req.URL.Path, "/docs") || slices.Contains([]string{"/openapi.yaml", "/openapi.json", "/healthz", "/readyz", "/metrics"}, req.URL.Path) ||
		req.Method == http.MethodOptions {
		return // not the API: the few routes the spec does not describe
	}
	clone := func(body []byte) *http.Request {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		return r
	}
	resCopy := *res
	resCopy.Body = io.NopCloser(bytes.NewReader(resBody))
	_, resErrs := c.v.ValidateHttpResponse(clone(reqBody), &resCopy)
	var problems []string
	if isPath(resErrs) {
		var e struct {
			Error string `json:"error"`
		}
		if (res.StatusCode != 404 && res.StatusCode != 405) || json.Unmarshal(resBody, &e) != nil || e.Error == "" {
			problems = append(problems, fmt.Sprintf("no operation matches, and the answer is %d %s, not 404 or 405 with the error body", res.StatusCode, resBody))
		}
	} else {
		for _, e := range resErrs {
			problems = append(problems, "response: "+describeErr(e))
		}
		if res.StatusCode/100 == 2 {
			if ok, reqErrs := c.v.ValidateHttpRequest(clone(reqBody)); !ok {
				for _, e := range reqErrs {
					problems = append(problems, "accepted a request the spec forbids: "+describeErr(e))
				}
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked++
	for _, p := range problems {
		c.violations = append(c.violations, fmt.Sprintf("%s %s → %d: %s", req.Method, req.URL.Path, res.StatusCode, p))
	}
}

func isPath(errs []*verrors.ValidationError) bool {
	for _, e := range errs {
		if e.ValidationType == helpers.PathValidation {
			return true
		}
	}
	return false
}

func describeErr(e *verrors.ValidationError) string {
	s := e.Message
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	for _, se := range e.SchemaValidationErrors {
		s += "; " + se.Reason + " at " + se.FieldPath
	}
	return s
}

// report fails the run if any exchange broke the contract.
func (c *contract) report(code int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(os.Stderr, "contract: %d exchanges checked against openapi.yaml, %d violations\n", c.checked, len(c.violations))
	for _, v := range c.violations {
		fmt.Fprintln(os.Stderr, "  "+v)
	}
	if len(c.violations) > 0 && code == 0 {
		return 1
	}
	return code
}
