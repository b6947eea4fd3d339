package main

// openapi.yaml is the single source of truth: these lines regenerate everything
// derived from it in Go. Run `go generate ./...` after editing the spec and commit
// the result; the TypeScript SDK's types are refreshed with `npm run generate` in
// clients/typescript.

//go:generate go tool oapi-codegen -config oapi-codegen.yaml openapi.yaml
//go:generate go tool oapi-codegen -config oapi-codegen-client.yaml openapi.yaml
