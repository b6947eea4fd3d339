package impl

// The example resource: each user's key/value items, at /my_data. It is
// the FastAPI seed's, kept to show the parts of an API passflow protects;
// README's "Make it yours" says how to remove it.

import (
	"context"
	"errors"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/generated/api"
)

// ListMyData is GET /my_data.
func (s *Server) ListMyData(ctx context.Context, _ api.ListMyDataRequestObject) (api.ListMyDataResponseObject, error) {
	p := principal(ctx)
	items, err := s.items.ListItems(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	out := make(api.ListMyData200JSONResponse, len(items))
	for i, it := range items {
		out[i] = api.Item{Key: it.Key, Value: it.Value}
	}
	return out, nil
}

// ListMyDataWithSlash is GET /my_data/, the FastAPI seed's path.
func (s *Server) ListMyDataWithSlash(ctx context.Context, _ api.ListMyDataWithSlashRequestObject) (api.ListMyDataWithSlashResponseObject, error) {
	res, err := s.ListMyData(ctx, api.ListMyDataRequestObject{})
	if err != nil {
		return nil, err
	}
	return api.ListMyDataWithSlash200JSONResponse(res.(api.ListMyData200JSONResponse)), nil
}

// PutMyData is PUT /my_data/{key}.
func (s *Server) PutMyData(ctx context.Context, req api.PutMyDataRequestObject) (api.PutMyDataResponseObject, error) {
	p := principal(ctx)
	created, err := s.items.PutItem(ctx, p.UserID, req.Key, req.Body.Value)
	if err != nil {
		return nil, err
	}
	item := api.Item{Key: req.Key, Value: req.Body.Value}
	if created {
		return api.PutMyData201JSONResponse(item), nil
	}
	return api.PutMyData200JSONResponse(item), nil
}

// DeleteMyData is DELETE /my_data/{key}.
func (s *Server) DeleteMyData(ctx context.Context, req api.DeleteMyDataRequestObject) (api.DeleteMyDataResponseObject, error) {
	p := principal(ctx)
	if err := s.items.DeleteItem(ctx, p.UserID, req.Key); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return nil, fault.Wrap(fault.NotFound, "you have no item with that key", err)
		}
		return nil, err
	}
	return api.DeleteMyData204Response{}, nil
}
