// Resolves names and lists a Service's endpoints with readyns embedded in a Go program.
//
// readyns is embedded through its C ABI (cgo). The resolver runs on its own thread; its callbacks
// reach Go through the exported functions below, and the answers come back on channels.
//
//	go build && ./resolve -upstream 10.96.0.10:53 example.org
//	./resolve -upstream 10.96.0.10:53 -endpoints web/shop/http
package main

/*
#cgo LDFLAGS: -lreadyns
#include <stdint.h>
#include <stdlib.h>
#include "readyns/readyns.h"
int readyns_go_resolve(readyns_resolver* resolver, const char* name, uint16_t type,
                       uintptr_t handle);
int readyns_go_endpoints(readyns_resolver* resolver, const char* service, const char* ns,
                         const char* port, uintptr_t handle);
*/
import "C"

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/cgo"
	"strings"
	"unsafe"
)

// Record is one answer record: the address for A and AAAA, else the data as text.
type Record struct {
	Name string
	Type uint16
	TTL  uint32
	Data string
}

// Endpoint is one address and port of a Service.
type Endpoint struct {
	Address  string
	Port     uint16
	Hostname string
}

type answer struct {
	rcode   int
	records []Record
	err     error
}

type endpoints struct {
	list []Endpoint
	err  error
}

func statusError(status C.int, message *C.char) error {
	return fmt.Errorf("%s: %s", C.GoString(C.readyns_strerror(status)), C.GoString(message))
}

//export goOnAnswer
func goOnAnswer(handle C.uintptr_t, status C.int, message *C.char, a *C.readyns_answer) {
	h := cgo.Handle(handle)
	out := h.Value().(chan answer)
	h.Delete()
	if status != C.READYNS_OK {
		out <- answer{err: statusError(status, message)}
		return
	}
	result := answer{rcode: int(a.rcode)}
	for _, r := range unsafe.Slice(a.records, int(a.record_count)) {
		result.records = append(result.records, Record{
			Name: C.GoString(r.name), Type: uint16(r._type), TTL: uint32(r.ttl),
			Data: C.GoString(r.data)})
	}
	out <- result
}

//export goOnEndpoints
func goOnEndpoints(handle C.uintptr_t, status C.int, message *C.char, e *C.readyns_endpoint,
	count C.size_t) {
	h := cgo.Handle(handle)
	out := h.Value().(chan endpoints)
	h.Delete()
	if status != C.READYNS_OK {
		out <- endpoints{err: statusError(status, message)}
		return
	}
	var result endpoints
	for _, ep := range unsafe.Slice(e, int(count)) {
		result.list = append(result.list, Endpoint{
			Address: C.GoString(ep.address), Port: uint16(ep.port),
			Hostname: C.GoString(ep.hostname)})
	}
	out <- result
}

// Resolver is readyns's embedded resolver.
type Resolver struct{ r *C.readyns_resolver }

// NewResolver starts a resolver forwarding to upstream, on a thread of its own.
func NewResolver(upstream string) (*Resolver, error) {
	options := C.readyns_options_new()
	defer C.readyns_options_free(options)
	for _, kv := range [][2]string{{"upstreams", upstream}, {"kube.mode", "off"},
		{"log_level", "warn"}} {
		key, value := C.CString(kv[0]), C.CString(kv[1])
		status := C.readyns_options_set(options, key, value)
		C.free(unsafe.Pointer(key))
		C.free(unsafe.Pointer(value))
		if status != C.READYNS_OK {
			return nil, errors.New(C.GoString(C.readyns_last_error()))
		}
	}
	var r *C.readyns_resolver
	if C.readyns_resolver_new(options, nil, &r) != C.READYNS_OK {
		return nil, errors.New(C.GoString(C.readyns_last_error()))
	}
	return &Resolver{r}, nil
}

// Close stops the resolver; no callback comes after it.
func (r *Resolver) Close() { C.readyns_resolver_free(r.r) }

// Resolve asks for name's records of type qtype and waits for the answer.
func (r *Resolver) Resolve(name string, qtype uint16) (int, []Record, error) {
	out := make(chan answer, 1)
	h := cgo.NewHandle(out)
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if C.readyns_go_resolve(r.r, cname, C.uint16_t(qtype), C.uintptr_t(h)) != C.READYNS_OK {
		h.Delete()
		return 0, nil, errors.New(C.GoString(C.readyns_last_error()))
	}
	a := <-out
	return a.rcode, a.records, a.err
}

// Endpoints lists a Service's endpoints for a named port.
func (r *Resolver) Endpoints(service, namespace, port string) ([]Endpoint, error) {
	out := make(chan endpoints, 1)
	h := cgo.NewHandle(out)
	cs, cn, cp := C.CString(service), C.CString(namespace), C.CString(port)
	defer C.free(unsafe.Pointer(cs))
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(cp))
	if C.readyns_go_endpoints(r.r, cs, cn, cp, C.uintptr_t(h)) != C.READYNS_OK {
		h.Delete()
		return nil, errors.New(C.GoString(C.readyns_last_error()))
	}
	e := <-out
	return e.list, e.err
}

func main() {
	upstream := flag.String("upstream", "", "the DNS server to forward to, IP:PORT")
	service := flag.String("endpoints", "", "SERVICE/NAMESPACE[/PORT]: list its endpoints")
	flag.Parse()
	if *upstream == "" || (*service == "" && flag.NArg() == 0) {
		fmt.Fprintln(os.Stderr, "usage: resolve -upstream IP:PORT [-endpoints SVC/NS[/PORT]] [NAME...]")
		os.Exit(2)
	}
	r, err := NewResolver(*upstream)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer r.Close()
	failed := false
	for _, name := range flag.Args() {
		for _, qtype := range []uint16{1, 28} {
			rcode, records, err := r.Resolve(name, qtype)
			if err != nil || rcode != 0 {
				fmt.Fprintf(os.Stderr, "%s: rcode %d %v\n", name, rcode, err)
				failed = true
			}
			for _, rec := range records {
				fmt.Printf("%s %d %d %s\n", rec.Name, rec.TTL, rec.Type, rec.Data)
			}
		}
	}
	if *service != "" {
		parts := append(strings.Split(*service, "/"), "", "")
		list, err := r.Endpoints(parts[0], parts[1], parts[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
		}
		for _, e := range list {
			fmt.Printf("endpoint %s %d %q\n", e.Address, e.Port, e.Hostname)
		}
	}
	if failed {
		r.Close()
		os.Exit(1)
	}
}
