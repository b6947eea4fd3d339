package main

// openapi.yaml is the single source of truth: these lines regenerate everything
// derived from it. Run `go generate ./...` after editing the spec and commit the result.

//go:generate go tool oapi-codegen -config oapi-codegen.yaml openapi.yaml
