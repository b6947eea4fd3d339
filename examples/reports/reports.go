package main

import (
	"context"
	"sync"
	"time"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/examples/reports/api"
	"github.com/passflow/passflow/fault"
)

// reports are the service's handlers, over reports kept in memory. The
// guard has checked each request's token and scopes against openapi.yaml
// before a handler runs.
type reports struct {
	mu  sync.Mutex
	all []api.Report // by id, from 1
}

var _ api.StrictServerInterface = (*reports)(nil)

// ListReports is GET /reports.
func (r *reports) ListReports(context.Context, api.ListReportsRequestObject) (api.ListReportsResponseObject, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]api.Report, 0, len(r.all)) // [] when there are none, never null
	for i := len(r.all) - 1; i >= 0; i-- {
		out = append(out, r.all[i])
	}
	return api.ListReports200JSONResponse(out), nil
}

// FileReport is POST /reports.
func (r *reports) FileReport(ctx context.Context, req api.FileReportRequestObject) (api.FileReportResponseObject, error) {
	caller, _ := auth.PrincipalFrom(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := api.Report{
		Id: int64(len(r.all) + 1), Title: req.Body.Title, Body: req.Body.Body,
		Author: caller.Username, FiledAt: time.Now().UTC(),
	}
	r.all = append(r.all, rep)
	return api.FileReport201JSONResponse(rep), nil
}

// GetReport is GET /reports/{id}.
func (r *reports) GetReport(_ context.Context, req api.GetReportRequestObject) (api.GetReportResponseObject, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Id < 1 || req.Id > int64(len(r.all)) {
		return nil, fault.New(fault.NotFound, "no such report")
	}
	return api.GetReport200JSONResponse(r.all[req.Id-1]), nil
}
