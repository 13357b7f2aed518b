// Package api holds tokend's OpenAPI 3.1 document, embedded so that the
// admin listener serves the very document the tests validate against.
package api

import _ "embed"

// OpenAPI is api/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
