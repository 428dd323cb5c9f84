// Package api is the wire contract of authsvc's HTTP endpoints, the one
// place both sides read it from: the request and response bodies, the
// account's KDF parameters and their bounds, the error body and its codes,
// and the paths. authsvc/httpapi serves these types and sdk/authclient
// sends and decodes them.
//
// The published description is authsvc/httpapi/openapi.yaml; a test there
// keeps it and this package in agreement (every member, which of them are
// required, and every error code). The package imports the standard
// library only, so a second client can take it without taking the server.
package api
