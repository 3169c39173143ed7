// OPA's Go engine as a shared library, for policy_bench's in-process comparison only:
// the gate's embedded default is an OPA process (fleet/policy/engines/managed.py); this
// measures the alternative of loading OPA into the Python process with ctypes.
//
//	CGO_ENABLED=1 go build -buildmode=c-shared -o libfleetopa.so .
package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"encoding/json"
	"sync"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/util"
)

var (
	mu       sync.RWMutex
	prepared = map[int64]rego.PreparedEvalQuery{}
	next     int64
)

func reply(value any) *C.char {
	out, err := json.Marshal(value)
	if err != nil {
		out, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return C.CString(string(out))
}

// FleetPrepare compiles modules ({"id": source}) read as OPA's --v0-compatible does (v0,
// or v1 where a module imports rego.v1) and prepares query; it answers {"handle": n} or
// {"error": "..."}.
//
//export FleetPrepare
func FleetPrepare(modulesJSON *C.char, query *C.char) *C.char {
	var modules map[string]string
	if err := json.Unmarshal([]byte(C.GoString(modulesJSON)), &modules); err != nil {
		return reply(map[string]string{"error": err.Error()})
	}
	options := []func(*rego.Rego){rego.Query(C.GoString(query)), rego.StrictBuiltinErrors(true)}
	for id, source := range modules {
		parsed, err := ast.ParseModuleWithOpts(id, source, ast.ParserOptions{RegoVersion: ast.RegoV0})
		if err != nil {
			return reply(map[string]string{"error": err.Error()})
		}
		options = append(options, rego.ParsedModule(parsed))
	}
	query_, err := rego.New(options...).PrepareForEval(context.Background())
	if err != nil {
		return reply(map[string]string{"error": err.Error()})
	}
	mu.Lock()
	next++
	handle := next
	prepared[handle] = query_
	mu.Unlock()
	return reply(map[string]int64{"handle": handle})
}

// FleetEval evaluates a prepared query on an input (JSON): {"result": value} or {"error": "..."}.
//
//export FleetEval
func FleetEval(handle C.longlong, inputJSON *C.char) *C.char {
	mu.RLock()
	query, ok := prepared[int64(handle)]
	mu.RUnlock()
	if !ok {
		return reply(map[string]string{"error": "unknown handle"})
	}
	// Decoded as OPA's server decodes a request body: JSON, then OPA's value.
	var document any
	if err := util.UnmarshalJSON([]byte(C.GoString(inputJSON)), &document); err != nil {
		return reply(map[string]string{"error": err.Error()})
	}
	input, err := ast.InterfaceToValue(document)
	if err != nil {
		return reply(map[string]string{"error": err.Error()})
	}
	results, err := query.Eval(context.Background(), rego.EvalParsedInput(input))
	if err != nil {
		return reply(map[string]string{"error": err.Error()})
	}
	if len(results) == 0 || len(results[0].Expressions) == 0 {
		return reply(map[string]any{})
	}
	return reply(map[string]any{"result": results[0].Expressions[0].Value})
}

// FleetRelease forgets a prepared query.
//
//export FleetRelease
func FleetRelease(handle C.longlong) {
	mu.Lock()
	delete(prepared, int64(handle))
	mu.Unlock()
}

// FleetFree frees a string this library returned.
//
//export FleetFree
func FleetFree(p *C.char) { C.free(unsafe.Pointer(p)) }

func main() {}
