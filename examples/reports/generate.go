package main

// openapi.yaml is this service's source of truth, as passflow's is passflow's.
//go:generate go tool oapi-codegen -config oapi-codegen.yaml openapi.yaml
