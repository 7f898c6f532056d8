// Package abitest reads, writes and checks the ABI test vectors of
// abi/testdata/vectors.json, which the host, the Go SDK and the Python SDK
// all replay.
//
// The file is a JSON list of vectors. A valid vector has the message bytes
// as a hex string and their decoded, readable form:
//
//	{"name": "request/get", "kind": "request", "hex": "0300...", "decoded": {...}}
//
// A malformed vector has an error class instead of a decoded form:
//
//	{"name": "request/trailing-byte", "kind": "request", "hex": "...",
//	 "error": "trailing", "reason": "one byte after the body"}
//
// Kinds are request, response, job, job_result, values and reply. Error
// classes are truncated (a field runs past the end: abi.ErrShort),
// trailing (bytes left after the message: abi.ErrTrailing) and invalid
// (well framed but not allowed: a status outside 100..999, an unknown value
// kind, a bool byte other than 0 or 1, an unknown job status).
//
// In the readable form every byte string (method, header names and values,
// bodies, payloads, string and bytes values, messages) is a JSON string
// when it is valid UTF-8 and {"hex": "..."} otherwise. Integers are JSON
// numbers (int64 range); a float value carries its IEEE-754 bits as 16 hex
// digits, plus its value as a number when it is finite.
package abitest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/wasmcorn/wasmcorn/abi"
)

// Vector kinds.
const (
	KindRequest   = "request"
	KindResponse  = "response"
	KindJob       = "job"
	KindJobResult = "job_result"
	KindValues    = "values"
	KindReply     = "reply"
)

// Error classes of malformed vectors.
const (
	ErrClassTruncated = "truncated"
	ErrClassTrailing  = "trailing"
	ErrClassInvalid   = "invalid"
)

// Vector is one test vector: a message and either its readable decoded
// form (Decoded) or, for a malformed message, the class of error a decoder
// must return (Error).
type Vector struct {
	Name    string          `json:"name"`
	Kind    string          `json:"kind"`
	Hex     string          `json:"hex"`
	Decoded json.RawMessage `json:"decoded,omitempty"`
	Error   string          `json:"error,omitempty"`
	Reason  string          `json:"reason,omitempty"`
}

// Load reads a vectors file.
func Load(path string) ([]Vector, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("abitest: %w", err)
	}
	var vs []Vector
	if err := json.Unmarshal(b, &vs); err != nil {
		return nil, fmt.Errorf("abitest: parse %s: %w", path, err)
	}
	return vs, nil
}

// Marshal returns the canonical file form of vs: indented JSON without
// HTML escaping, ending in a newline.
func Marshal(vs []Vector) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(vs); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Bytes returns the vector's message bytes.
func (v *Vector) Bytes() ([]byte, error) {
	b, err := hex.DecodeString(v.Hex)
	if err != nil {
		return nil, fmt.Errorf("vector %s: bad hex: %w", v.Name, err)
	}
	return b, nil
}

// Readable returns the vector's Decoded form as the typed value for its
// kind: *Request, *Response, *Job, *JobResult, []Value or *Reply.
func (v *Vector) Readable() (any, error) {
	var dst any
	switch v.Kind {
	case KindRequest:
		dst = new(Request)
	case KindResponse:
		dst = new(Response)
	case KindJob:
		dst = new(Job)
	case KindJobResult:
		dst = new(JobResult)
	case KindValues:
		dst = new([]Value)
	case KindReply:
		dst = new(Reply)
	default:
		return nil, fmt.Errorf("vector %s: unknown kind %q", v.Name, v.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(v.Decoded))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return nil, fmt.Errorf("vector %s: decoded form: %w", v.Name, err)
	}
	if vs, ok := dst.(*[]Value); ok {
		return *vs, nil
	}
	return dst, nil
}

// Decode decodes msg as a message of kind with the abi package and returns
// its readable form (the types of Readable).
func Decode(kind string, msg []byte) (any, error) {
	switch kind {
	case KindRequest:
		var r abi.Request
		if err := abi.DecodeRequest(msg, &r); err != nil {
			return nil, err
		}
		return FromRequest(&r), nil
	case KindResponse:
		var r abi.Response
		if err := abi.DecodeResponse(msg, &r); err != nil {
			return nil, err
		}
		return FromResponse(&r), nil
	case KindJob:
		var j abi.Job
		if err := abi.DecodeJob(msg, &j); err != nil {
			return nil, err
		}
		return FromJob(&j), nil
	case KindJobResult:
		var r abi.JobResult
		if err := abi.DecodeJobResult(msg, &r); err != nil {
			return nil, err
		}
		return FromJobResult(&r), nil
	case KindValues:
		vs, err := abi.DecodeValues(nil, msg)
		if err != nil {
			return nil, err
		}
		return FromValues(vs), nil
	case KindReply:
		return DecodeReply(msg)
	}
	return nil, fmt.Errorf("abitest: unknown kind %q", kind)
}

// Encode encodes a readable value (a type returned by Readable) with the
// abi package.
func Encode(readable any) ([]byte, error) {
	switch r := readable.(type) {
	case *Request:
		return abi.AppendRequest(nil, r.ABI()), nil
	case *Response:
		return abi.AppendResponse(nil, r.ABI()), nil
	case *Job:
		return abi.AppendJob(nil, r.ABI()), nil
	case *JobResult:
		return abi.AppendJobResult(nil, r.ABI()), nil
	case []Value:
		return AppendValues(nil, r)
	case *Reply:
		return r.Encode(nil)
	}
	return nil, fmt.Errorf("abitest: cannot encode %T", readable)
}

// ErrorClass classifies a decoding error: truncated, trailing or invalid.
func ErrorClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, abi.ErrShort):
		return ErrClassTruncated
	case errors.Is(err, abi.ErrTrailing):
		return ErrClassTrailing
	}
	return ErrClassInvalid
}

// Check replays v against the abi package. For a valid vector the bytes
// must decode to the readable form and the readable form must encode to the
// same bytes; for a malformed one decoding must fail with the vector's
// error class.
func Check(v *Vector) error {
	msg, err := v.Bytes()
	if err != nil {
		return err
	}
	got, decErr := Decode(v.Kind, msg)
	if v.Error != "" {
		if decErr == nil {
			return fmt.Errorf("vector %s: decoded without error, want %s", v.Name, v.Error)
		}
		if c := ErrorClass(decErr); c != v.Error {
			return fmt.Errorf("vector %s: error %q is %s, want %s", v.Name, decErr, c, v.Error)
		}
		return nil
	}
	if decErr != nil {
		return fmt.Errorf("vector %s: decode: %w", v.Name, decErr)
	}
	if err := SameJSON(got, v.Decoded); err != nil {
		return fmt.Errorf("vector %s: %w", v.Name, err)
	}
	want, err := v.Readable()
	if err != nil {
		return err
	}
	enc, err := Encode(want)
	if err != nil {
		return fmt.Errorf("vector %s: encode: %w", v.Name, err)
	}
	if !bytes.Equal(enc, msg) {
		return fmt.Errorf("vector %s: re-encoded to %x, want %s", v.Name, enc, v.Hex)
	}
	return nil
}

// SameJSON reports, as an error, whether got marshals to JSON equal to want
// (compared as values, numbers exactly).
func SameJSON(got any, want json.RawMessage) error {
	gb, err := json.Marshal(got)
	if err != nil {
		return err
	}
	g, err := normalize(gb)
	if err != nil {
		return err
	}
	w, err := normalize(want)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(g, w) {
		return fmt.Errorf("decoded to %s, want %s", gb, want)
	}
	return nil
}

func normalize(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// Bytes is a byte string in readable form: a JSON string when valid UTF-8,
// otherwise {"hex": "..."}.
type Bytes []byte

// MarshalJSON implements json.Marshaler.
func (b Bytes) MarshalJSON() ([]byte, error) {
	if utf8.Valid(b) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(string(b)); err != nil {
			return nil, err
		}
		return bytes.TrimRight(buf.Bytes(), "\n"), nil
	}
	return json.Marshal(struct {
		Hex string `json:"hex"`
	}{hex.EncodeToString(b)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*b = Bytes(s)
		return nil
	}
	var h struct {
		Hex *string `json:"hex"`
	}
	if err := json.Unmarshal(data, &h); err != nil || h.Hex == nil {
		return fmt.Errorf("abitest: byte string must be a string or {\"hex\": ...}, got %s", data)
	}
	d, err := hex.DecodeString(*h.Hex)
	if err != nil {
		return fmt.Errorf("abitest: %w", err)
	}
	*b = d
	return nil
}

// Header is a header in readable form: [name, value].
type Header [2]Bytes

// Request is the readable form of abi.Request.
type Request struct {
	Method     Bytes    `json:"method"`
	Scheme     Bytes    `json:"scheme"`
	Host       Bytes    `json:"host"`
	Path       Bytes    `json:"path"`
	RawQuery   Bytes    `json:"raw_query"`
	RemoteAddr Bytes    `json:"remote_addr"`
	RequestID  Bytes    `json:"request_id"`
	Headers    []Header `json:"headers"`
	Body       Bytes    `json:"body"`
}

// FromRequest returns the readable form of r (sharing its bytes).
func FromRequest(r *abi.Request) *Request {
	return &Request{
		Method: r.Method, Scheme: r.Scheme, Host: r.Host, Path: r.Path,
		RawQuery: r.RawQuery, RemoteAddr: r.RemoteAddr, RequestID: r.RequestID,
		Headers: fromHeaders(r.Headers), Body: r.Body,
	}
}

// ABI returns r as an abi.Request (sharing its bytes).
func (r *Request) ABI() *abi.Request {
	return &abi.Request{
		Method: r.Method, Scheme: r.Scheme, Host: r.Host, Path: r.Path,
		RawQuery: r.RawQuery, RemoteAddr: r.RemoteAddr, RequestID: r.RequestID,
		Headers: toHeaders(r.Headers), Body: r.Body,
	}
}

func fromHeaders(hs []abi.Header) []Header {
	out := make([]Header, len(hs))
	for i, h := range hs {
		out[i] = Header{h.Name, h.Value}
	}
	return out
}

func toHeaders(hs []Header) []abi.Header {
	out := make([]abi.Header, len(hs))
	for i, h := range hs {
		out[i] = abi.Header{Name: h[0], Value: h[1]}
	}
	return out
}

// Response is the readable form of abi.Response.
type Response struct {
	Status  uint32   `json:"status"`
	Headers []Header `json:"headers"`
	Body    Bytes    `json:"body"`
}

// FromResponse returns the readable form of r.
func FromResponse(r *abi.Response) *Response {
	return &Response{Status: r.Status, Headers: fromHeaders(r.Headers), Body: r.Body}
}

// ABI returns r as an abi.Response.
func (r *Response) ABI() *abi.Response {
	return &abi.Response{Status: r.Status, Headers: toHeaders(r.Headers), Body: r.Body}
}

// Job is the readable form of abi.Job.
type Job struct {
	Queue   Bytes  `json:"queue"`
	ID      Bytes  `json:"id"`
	Attempt uint32 `json:"attempt"`
	Payload Bytes  `json:"payload"`
}

// FromJob returns the readable form of j.
func FromJob(j *abi.Job) *Job {
	return &Job{Queue: j.Queue, ID: j.ID, Attempt: j.Attempt, Payload: j.Payload}
}

// ABI returns j as an abi.Job.
func (j *Job) ABI() *abi.Job {
	return &abi.Job{Queue: j.Queue, ID: j.ID, Attempt: j.Attempt, Payload: j.Payload}
}

// JobResult is the readable form of abi.JobResult. Name is "ok", "retry"
// or "fail", for the reader; Status is authoritative.
type JobResult struct {
	Status uint32 `json:"status"`
	Name   string `json:"name"`
	Error  Bytes  `json:"error"`
}

var jobStatusNames = [...]string{abi.JobOK: "ok", abi.JobRetry: "retry", abi.JobFail: "fail"}

// FromJobResult returns the readable form of r.
func FromJobResult(r *abi.JobResult) *JobResult {
	name := fmt.Sprintf("status(%d)", r.Status)
	if int(r.Status) < len(jobStatusNames) {
		name = jobStatusNames[r.Status]
	}
	return &JobResult{Status: uint32(r.Status), Name: name, Error: r.Error}
}

// ABI returns r as an abi.JobResult.
func (r *JobResult) ABI() *abi.JobResult {
	return &abi.JobResult{Status: abi.JobStatus(r.Status), Error: r.Error}
}

// Value is the readable form of abi.Value:
//
//	{"kind": "null"}
//	{"kind": "int", "value": -5}
//	{"kind": "float", "bits": "3ff8000000000000", "value": 1.5}
//	{"kind": "string", "value": "text"}
//	{"kind": "bytes", "value": {"hex": "00ff"}}
//	{"kind": "bool", "value": true}
type Value struct {
	Kind  string          `json:"kind"`
	Bits  string          `json:"bits,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// FromValue returns the readable form of v.
func FromValue(v abi.Value) Value {
	out := Value{Kind: v.Kind.String()}
	var raw any
	switch v.Kind {
	case abi.KindNull:
		return out
	case abi.KindInt:
		raw = v.I
	case abi.KindFloat:
		out.Bits = fmt.Sprintf("%016x", math.Float64bits(v.F))
		if math.IsInf(v.F, 0) || math.IsNaN(v.F) {
			return out
		}
		raw = v.F
	case abi.KindString, abi.KindBytes:
		raw = Bytes(v.B)
	case abi.KindBool:
		raw = v.I != 0
	}
	out.Value, _ = json.Marshal(raw)
	return out
}

// FromValues returns the readable form of vs.
func FromValues(vs []abi.Value) []Value {
	out := make([]Value, len(vs))
	for i, v := range vs {
		out[i] = FromValue(v)
	}
	return out
}

// ABI returns v as an abi.Value.
func (v *Value) ABI() (abi.Value, error) {
	switch v.Kind {
	case "null":
		return abi.Value{Kind: abi.KindNull}, nil
	case "int":
		n, err := strconv.ParseInt(string(v.Value), 10, 64)
		if err != nil {
			return abi.Value{}, fmt.Errorf("abitest: int value %s: %w", v.Value, err)
		}
		return abi.Value{Kind: abi.KindInt, I: n}, nil
	case "float":
		u, err := strconv.ParseUint(v.Bits, 16, 64)
		if err != nil || len(v.Bits) != 16 {
			return abi.Value{}, fmt.Errorf("abitest: float bits %q must be 16 hex digits", v.Bits)
		}
		f := math.Float64frombits(u)
		if v.Value != nil {
			var x float64
			if err := json.Unmarshal(v.Value, &x); err != nil || x != f {
				return abi.Value{}, fmt.Errorf("abitest: float value %s disagrees with bits %s", v.Value, v.Bits)
			}
		}
		return abi.Value{Kind: abi.KindFloat, F: f}, nil
	case "string", "bytes":
		var b Bytes
		if err := json.Unmarshal(v.Value, &b); err != nil {
			return abi.Value{}, err
		}
		k := abi.KindString
		if v.Kind == "bytes" {
			k = abi.KindBytes
		}
		return abi.Value{Kind: k, B: b}, nil
	case "bool":
		var x bool
		if err := json.Unmarshal(v.Value, &x); err != nil {
			return abi.Value{}, fmt.Errorf("abitest: bool value %s: %w", v.Value, err)
		}
		var i int64
		if x {
			i = 1
		}
		return abi.Value{Kind: abi.KindBool, I: i}, nil
	}
	return abi.Value{}, fmt.Errorf("abitest: unknown value kind %q", v.Kind)
}

// AppendValues encodes readable values.
func AppendValues(dst []byte, vs []Value) ([]byte, error) {
	for i := range vs {
		v, err := vs[i].ABI()
		if err != nil {
			return nil, err
		}
		dst = abi.AppendValue(dst, v)
	}
	return dst, nil
}

// Reply is the readable form of a host-call reply: Code with its Name,
// then Values for ok or Message for an error.
type Reply struct {
	Code    uint8   `json:"code"`
	Name    string  `json:"name"`
	Values  []Value `json:"values,omitempty"`
	Message *Bytes  `json:"message,omitempty"`
}

// DecodeReply decodes a reply with abi.DecodeReply and, for ok, decodes
// every value.
func DecodeReply(msg []byte) (*Reply, error) {
	vs, err := abi.DecodeReply(0, msg)
	var re *abi.ReplyError
	if errors.As(err, &re) {
		m := Bytes(re.Msg)
		return &Reply{Code: uint8(re.Code), Name: re.Code.String(), Message: &m}, nil
	}
	if err != nil {
		return nil, err
	}
	var values []abi.Value
	for vs.More() {
		v, err := vs.Next()
		if err != nil {
			return nil, err
		}
		values = append(values, v)
	}
	return &Reply{Code: uint8(abi.OK), Name: abi.OK.String(), Values: FromValues(values)}, nil
}

// Encode appends the reply's encoding to dst.
func (r *Reply) Encode(dst []byte) ([]byte, error) {
	if r.Code == uint8(abi.OK) {
		return AppendValues(abi.AppendReplyOK(dst), r.Values)
	}
	if r.Message == nil {
		return nil, fmt.Errorf("abitest: error reply %d without a message", r.Code)
	}
	return abi.AppendReplyError(dst, abi.Code(r.Code), string(*r.Message)), nil
}
