package httpapi

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"zsm.dev/zsm/api"
)

// The published contract (openapi.yaml) and the wire types both sides
// compile against (package api) must say the same thing. These tests hold
// them to it: the members of every body, which are required, their types
// and nullability, the KDF bounds, the paths and the error codes.

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml does not load: %v", err)
	}
	return doc
}

// wireTypes names, per operationId, the api type of the request body and
// of the success answer (nil: the operation has none).
var wireTypes = map[string]struct{ req, resp any }{
	"signup":           {api.SignupRequest{}, api.SignupResponse{}},
	"loginParams":      {api.ParamsRequest{}, api.ParamsResponse{}},
	"loginInit":        {api.InitRequest{}, api.Challenge{}},
	"loginVerify":      {api.VerifyRequest{}, api.LoginResponse{}},
	"refreshToken":     {api.RefreshRequest{}, api.Tokens{}},
	"logout":           {api.RefreshRequest{}, nil},
	"listSessions":     {nil, api.SessionsResponse{}},
	"revokeSession":    {nil, nil},
	"passwordInit":     {api.PasswordInitRequest{}, api.Challenge{}},
	"passwordChange":   {api.PasswordChangeRequest{}, api.PasswordChangeResponse{}},
	"publishKeyRecord": {api.KeyRecordRequest{}, nil},
	"upgradeKeys":      {api.KeyUpgradeRequest{}, nil},
	"openapi":          {nil, nil},
	"jwks":             {nil, nil},
	"healthz":          {nil, api.Health{}},
	"readyz":           {nil, api.Readiness{}},
}

// rawAs names what a json.RawMessage member holds on the wire, where the
// server keeps it raw to parse it strictly itself; members not listed (the
// key bundle) are opaque to the contract's types.
var rawAs = map[string]reflect.Type{"kdf": reflect.TypeFor[api.KDF]()}

func TestOpenAPIMatchesWireTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	seen := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			want, ok := wireTypes[op.OperationID]
			if !ok {
				t.Errorf("%s %s (%s): no api type named for it in wireTypes", method, path, op.OperationID)
				continue
			}
			seen[op.OperationID] = true
			var body *openapi3.SchemaRef
			if op.RequestBody != nil {
				if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil {
					body = mt.Schema
				}
			}
			compareBody(t, op.OperationID+" request", body, want.req)
			var answer *openapi3.SchemaRef
			for code, r := range op.Responses.Map() {
				if !strings.HasPrefix(code, "2") || r.Value == nil {
					continue
				}
				if mt := r.Value.Content.Get("application/json"); mt != nil {
					answer = mt.Schema
				}
			}
			compareBody(t, op.OperationID+" answer", answer, want.resp)
		}
	}
	for id := range wireTypes {
		if !seen[id] {
			t.Errorf("wireTypes names %s, which openapi.yaml does not describe", id)
		}
	}
	// The error body of every answer.
	compare(t, "Error", doc.Components.Schemas["Error"], reflect.TypeFor[api.Error]())
}

func compareBody(t *testing.T, what string, s *openapi3.SchemaRef, v any) {
	t.Helper()
	switch {
	case s == nil && v == nil:
	case s == nil:
		t.Errorf("%s: api has %T, openapi.yaml documents no JSON body", what, v)
	case v == nil:
		t.Errorf("%s: openapi.yaml documents a JSON body, api has no type for it", what)
	default:
		compare(t, what, s, reflect.TypeOf(v))
	}
}

// member is one JSON member of a Go struct, as encoding/json sees it.
type member struct {
	typ      reflect.Type
	optional bool // omitempty
}

func members(typ reflect.Type) map[string]member {
	out := map[string]member{}
	for f := range typ.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range members(f.Type) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = member{typ: f.Type, optional: strings.Contains(opts, "omitempty")}
	}
	return out
}

// flat merges a schema with its allOf parts: the properties, required
// members, type and nullability they add up to.
type flat struct {
	props    map[string]*openapi3.SchemaRef
	required map[string]bool
	types    []string
	format   string
	nullable bool
	items    *openapi3.SchemaRef
	schema   *openapi3.Schema // the last part, for bounds and enums
}

func flatten(ref *openapi3.SchemaRef) flat {
	f := flat{props: map[string]*openapi3.SchemaRef{}, required: map[string]bool{}}
	var walk func(s *openapi3.Schema)
	walk = func(s *openapi3.Schema) {
		for _, part := range s.AllOf {
			walk(part.Value)
		}
		for k, v := range s.Properties {
			f.props[k] = v
		}
		for _, r := range s.Required {
			f.required[r] = true
		}
		if s.Type != nil && len(s.Type.Slice()) > 0 {
			f.types = s.Type.Slice()
		}
		if s.Format != "" {
			f.format = s.Format
		}
		f.nullable = f.nullable || s.Nullable
		if s.Items != nil {
			f.items = s.Items
		}
		f.schema = s
	}
	walk(ref.Value)
	return f
}

var timeType = reflect.TypeFor[time.Time]()

// compare holds the schema to the Go type: an object's members, required
// exactly when not omitempty, and each member's type and nullability.
func compare(t *testing.T, what string, ref *openapi3.SchemaRef, typ reflect.Type) {
	t.Helper()
	if ref == nil {
		t.Errorf("%s: openapi.yaml has no schema", what)
		return
	}
	f := flatten(ref)
	// A map of strings is an object of free members, each a string.
	if typ.Kind() == reflect.Map && typ.Key().Kind() == reflect.String && typ.Elem().Kind() == reflect.String {
		ap := f.schema.AdditionalProperties.Schema
		if len(f.props) != 0 || ap == nil || ap.Value == nil || !ap.Value.Type.Is("string") {
			t.Errorf("%s: %v is a map of strings, openapi.yaml does not describe an object of string members", what, typ)
		}
		return
	}
	if typ.Kind() != reflect.Struct || typ == timeType {
		t.Errorf("%s: %v is not a body type", what, typ)
		return
	}
	ms := members(typ)
	var goNames, docNames []string
	for n := range ms {
		goNames = append(goNames, n)
	}
	for n := range f.props {
		docNames = append(docNames, n)
	}
	sort.Strings(goNames)
	sort.Strings(docNames)
	if !slices.Equal(goNames, docNames) {
		t.Errorf("%s: api %v has members %v, openapi.yaml %v", what, typ, goNames, docNames)
		return
	}
	for name, m := range ms {
		if f.required[name] == m.optional {
			t.Errorf("%s.%s: required in openapi.yaml %v, omitempty in api %v", what, name, f.required[name], m.optional)
		}
		compareMember(t, what+"."+name, name, f.props[name], m.typ)
	}
}

func compareMember(t *testing.T, what, name string, ref *openapi3.SchemaRef, typ reflect.Type) {
	t.Helper()
	f := flatten(ref)
	if typ == reflect.TypeFor[json.RawMessage]() {
		if as, ok := rawAs[name]; ok {
			compare(t, what, ref, as)
		}
		return
	}
	nullable := typ.Kind() == reflect.Pointer
	if nullable {
		typ = typ.Elem()
	}
	if f.nullable != nullable {
		t.Errorf("%s: nullable %v in openapi.yaml, %v in api (a pointer)", what, f.nullable, nullable)
	}
	want := ""
	switch {
	case typ == timeType:
		want = "string"
		if f.format != "date-time" {
			t.Errorf("%s: a time in api, format %q in openapi.yaml", what, f.format)
		}
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		want = "integer"
	case typ.Kind() == reflect.Struct:
		compare(t, what, ref, typ)
		return
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Struct:
		want = "array"
		if f.items == nil {
			t.Errorf("%s: an array without items in openapi.yaml", what)
		} else {
			compare(t, what+"[]", f.items, typ.Elem())
		}
	default:
		t.Errorf("%s: no rule for the api type %v", what, typ)
		return
	}
	if !slices.Equal(f.types, []string{want}) {
		t.Errorf("%s: type %v in openapi.yaml, %s in api (%v)", what, f.types, want, typ)
	}
}

// The KDF bounds are one set of numbers for both sides and the document.
func TestOpenAPIKDFBounds(t *testing.T) {
	kdf := flatten(loadOpenAPI(t).Components.Schemas["KDF"])
	bound := func(name string, lo, hi float64) {
		t.Helper()
		s := kdf.props[name].Value
		if s.Min == nil || *s.Min != lo || s.Max == nil || *s.Max != hi {
			t.Errorf("kdf.%s: openapi.yaml bounds %v..%v, api %v..%v", name, deref(s.Min), deref(s.Max), lo, hi)
		}
	}
	bound("memory_kib", api.KDFFloorMemoryKiB, api.KDFMaxMemoryKiB)
	bound("iterations", api.KDFFloorIterations, api.KDFMaxIterations)
	bound("parallelism", api.KDFFloorParallelism, api.KDFMaxParallelism)
	if alg := kdf.props["alg"].Value.Enum; len(alg) != 1 || alg[0] != api.KDFAlg {
		t.Errorf("kdf.alg: openapi.yaml enum %v, api %q", alg, api.KDFAlg)
	}
	if tt := flatten(loadOpenAPI(t).Components.Schemas["Tokens"]).props["token_type"].Value.Enum; len(tt) != 1 || tt[0] != api.TokenType {
		t.Errorf("token_type: openapi.yaml enum %v, api %q", tt, api.TokenType)
	}
}

func deref(f *float64) any {
	if f == nil {
		return "none"
	}
	return *f
}

func TestOpenAPIDocumentsEveryPath(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, p := range []string{
		api.PathSignup, api.PathLoginParams, api.PathLoginInit, api.PathLoginVerify, api.PathTokenRefresh,
		api.PathLogout, api.PathSessions, api.PathSessions + "/{id}", api.PathPasswordInit, api.PathPasswordChange,
		api.PathKeyRecord, api.PathOpenAPI, api.PathJWKS,
	} {
		if doc.Paths.Find(p) == nil {
			t.Errorf("api path %s is not in openapi.yaml", p)
		}
	}
}

// undocumentedCodes may be answered by any endpoint and are not listed per
// response: a fault on the server, a method the route does not take, and
// any other HTTP-level refusal.
var undocumentedCodes = map[string]bool{api.CodeInternalError: true, api.CodeMethodNotAllowed: true, api.CodeHTTPError: true}

var backticked = regexp.MustCompile("`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`")

// Every code api defines is documented, and every code an error answer's
// description names is one api defines (or a member name it mentions).
func TestOpenAPIErrorCodes(t *testing.T) {
	doc := loadOpenAPI(t)
	known := map[string]bool{}
	for _, c := range api.Codes {
		if known[c] {
			t.Errorf("code %s listed twice in api.Codes", c)
		}
		known[c] = true
		if !undocumentedCodes[c] && !strings.Contains(string(OpenAPI), "`"+c+"`") {
			t.Errorf("api code %s is documented nowhere in openapi.yaml", c)
		}
	}
	memberNames := map[string]bool{}
	for _, w := range wireTypes {
		for _, v := range []any{w.req, w.resp} {
			if v != nil && reflect.TypeOf(v).Kind() == reflect.Struct {
				for n := range members(reflect.TypeOf(v)) {
					memberNames[n] = true
				}
			}
		}
	}
	check := func(where string, r *openapi3.Response) {
		if r == nil || r.Description == nil {
			return
		}
		mt := r.Content.Get("application/json")
		if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
			return
		}
		for _, m := range backticked.FindAllStringSubmatch(*r.Description, -1) {
			if !known[m[1]] && !memberNames[m[1]] {
				t.Errorf("%s names the code %s, which api does not define", where, m[1])
			}
		}
	}
	for name, r := range doc.Components.Responses {
		check("response "+name, r.Value)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, r := range op.Responses.Map() {
				if r.Ref == "" {
					check(method+" "+path+" "+status, r.Value)
				}
			}
		}
	}
}
