package guard

import (
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Scopes lists the scopes the spec's OAuth2 password flows declare,
// sorted: the one list of the API's scopes.
func Scopes(doc *openapi3.T) []string {
	var scopes []string
	if doc.Components == nil {
		return nil
	}
	for _, ref := range doc.Components.SecuritySchemes {
		if s := ref.Value; s != nil && s.Type == "oauth2" && s.Flows != nil && s.Flows.Password != nil {
			for name := range s.Flows.Password.Scopes {
				scopes = append(scopes, name)
			}
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(scopes)))
}

// Reserved finds the fixed path segments that stand where a path
// parameter would: with /users/{username} and /users/me, a user called me
// would be reached by both, so me is reserved for username. It maps each
// parameter's name to its reserved values, sorted.
func Reserved(doc *openapi3.T) map[string][]string {
	var paths [][]string
	for p := range doc.Paths.Map() {
		paths = append(paths, strings.Split(strings.Trim(p, "/"), "/"))
	}
	reserved := map[string][]string{}
	for _, a := range paths {
		for _, b := range paths {
			if len(a) != len(b) || !overlap(a, b) {
				continue
			}
			for i := range a {
				if name, ok := param(a[i]); ok {
					if _, bParam := param(b[i]); !bParam {
						reserved[name] = append(reserved[name], b[i])
					}
				}
			}
		}
	}
	for name, values := range reserved {
		reserved[name] = slices.Compact(slices.Sorted(slices.Values(values)))
	}
	return reserved
}

// overlap reports whether one request path could match both templates.
func overlap(a, b []string) bool {
	for i := range a {
		_, ap := param(a[i])
		_, bp := param(b[i])
		if !ap && !bp && a[i] != b[i] {
			return false
		}
	}
	return true
}

func param(segment string) (string, bool) {
	if strings.HasPrefix(segment, "{") && strings.HasSuffix(segment, "}") {
		return segment[1 : len(segment)-1], true
	}
	return "", false
}
