package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrShort is returned (wrapped) when a message ends before a field does.
var ErrShort = errors.New("abi: message truncated")

// ErrTrailing is returned (wrapped) when bytes remain after the last field.
var ErrTrailing = errors.New("abi: trailing bytes after message")

// MaxHeaders bounds the header count a decoder accepts, so a hostile count
// cannot make it allocate a huge slice before running out of input.
const MaxHeaders = 1 << 16

// Header is one HTTP header field. Name and Value alias the buffer they were
// decoded from; copy them to keep them past that buffer's life.
type Header struct {
	Name, Value []byte
}

// Request is an HTTP request as the guest sees it. Byte fields alias the
// buffer they were decoded from (or the caller's memory, when encoding).
// The zero value is an empty request; Reset returns a Request to it while
// keeping the Headers capacity, so one Request can be reused per instance.
type Request struct {
	Method     []byte
	Scheme     []byte // "http" or "https"
	Host       []byte
	Path       []byte // decoded path, without the query
	RawQuery   []byte // without the leading '?'
	RemoteAddr []byte // "ip:port"
	RequestID  []byte
	Headers    []Header
	Body       []byte
}

// Reset clears r for reuse, keeping allocated header capacity.
func (r *Request) Reset() {
	h := r.Headers[:0]
	*r = Request{Headers: h}
}

// Response is an HTTP response produced by the guest. Byte fields alias the
// buffer they were decoded from.
type Response struct {
	Status  uint32
	Headers []Header
	Body    []byte
}

// Reset clears r for reuse, keeping allocated header capacity.
func (r *Response) Reset() {
	h := r.Headers[:0]
	*r = Response{Headers: h}
}

// Job is one queued job handed to a guest's ExportJob.
type Job struct {
	Queue   []byte
	ID      []byte
	Attempt uint32 // 1 on the first run
	Payload []byte
}

// JobResult is a guest's answer to a Job.
type JobResult struct {
	Status JobStatus
	Error  []byte // a message when Status is not JobOK
}

// AppendU32 appends v little-endian.
func AppendU32(dst []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(dst, v) }

// AppendBytes appends a u32 length and b.
func AppendBytes(dst, b []byte) []byte {
	dst = AppendU32(dst, uint32(len(b)))
	return append(dst, b...)
}

// AppendStr appends a u32 length and s.
func AppendStr(dst []byte, s string) []byte {
	dst = AppendU32(dst, uint32(len(s)))
	return append(dst, s...)
}

func appendHeaders(dst []byte, hs []Header) []byte {
	dst = AppendU32(dst, uint32(len(hs)))
	for i := range hs {
		dst = AppendBytes(dst, hs[i].Name)
		dst = AppendBytes(dst, hs[i].Value)
	}
	return dst
}

// AppendRequest appends the encoding of r to dst and returns the result.
// It does not allocate when dst has room.
func AppendRequest(dst []byte, r *Request) []byte {
	dst = AppendBytes(dst, r.Method)
	dst = AppendBytes(dst, r.Scheme)
	dst = AppendBytes(dst, r.Host)
	dst = AppendBytes(dst, r.Path)
	dst = AppendBytes(dst, r.RawQuery)
	dst = AppendBytes(dst, r.RemoteAddr)
	dst = AppendBytes(dst, r.RequestID)
	dst = appendHeaders(dst, r.Headers)
	return AppendBytes(dst, r.Body)
}

// AppendResponse appends the encoding of r to dst and returns the result.
func AppendResponse(dst []byte, r *Response) []byte {
	dst = AppendU32(dst, r.Status)
	dst = appendHeaders(dst, r.Headers)
	return AppendBytes(dst, r.Body)
}

// AppendJob appends the encoding of j to dst.
func AppendJob(dst []byte, j *Job) []byte {
	dst = AppendBytes(dst, j.Queue)
	dst = AppendBytes(dst, j.ID)
	dst = AppendU32(dst, j.Attempt)
	return AppendBytes(dst, j.Payload)
}

// AppendJobResult appends the encoding of r to dst.
func AppendJobResult(dst []byte, r *JobResult) []byte {
	dst = AppendU32(dst, uint32(r.Status))
	return AppendBytes(dst, r.Error)
}

// reader walks a message. Its first error sticks; later reads return zero.
type reader struct {
	b   []byte
	off int
	err error
	at  string
}

func (r *reader) fail(field string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: reading %s at offset %d of %d", ErrShort, field, r.off, len(r.b))
	}
}

func (r *reader) u32(field string) uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 4 {
		r.fail(field)
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) bytes(field string) []byte {
	n := r.u32(field)
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)-r.off) {
		r.fail(field)
		return nil
	}
	v := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return v
}

func (r *reader) headers(dst []Header) []Header {
	n := r.u32("header count")
	if r.err != nil {
		return dst
	}
	// Each header takes at least 8 bytes, so a count larger than what
	// remains can be refused before allocating.
	if n > MaxHeaders || uint64(n)*8 > uint64(len(r.b)-r.off) {
		r.err = fmt.Errorf("%w: header count %d does not fit in %d remaining bytes", ErrShort, n, len(r.b)-r.off)
		return dst
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.bytes("header name")
		value := r.bytes("header value")
		dst = append(dst, Header{Name: name, Value: value})
	}
	return dst
}

func (r *reader) done(what string) error {
	if r.err != nil {
		return fmt.Errorf("decode %s: %w", what, r.err)
	}
	if r.off != len(r.b) {
		return fmt.Errorf("decode %s: %w (%d bytes)", what, ErrTrailing, len(r.b)-r.off)
	}
	return nil
}

// DecodeRequest decodes b into r, reusing r's header capacity. The fields of
// r alias b. It never panics; on error r's contents are unspecified.
func DecodeRequest(b []byte, r *Request) error {
	r.Reset()
	d := reader{b: b}
	r.Method = d.bytes("method")
	r.Scheme = d.bytes("scheme")
	r.Host = d.bytes("host")
	r.Path = d.bytes("path")
	r.RawQuery = d.bytes("raw query")
	r.RemoteAddr = d.bytes("remote address")
	r.RequestID = d.bytes("request id")
	r.Headers = d.headers(r.Headers)
	r.Body = d.bytes("body")
	return d.done("request")
}

// RequestIDOf returns the request id field of an encoded Request without
// decoding the rest, or nil when the message is malformed. It aliases msg.
func RequestIDOf(msg []byte) []byte {
	d := reader{b: msg}
	for i := 0; i < 6; i++ {
		d.bytes("field")
	}
	id := d.bytes("request id")
	if d.err != nil {
		return nil
	}
	return id
}

// DecodeResponse decodes b into r, reusing r's header capacity. The fields
// of r alias b. It never panics; a status outside 100..999 is an error.
func DecodeResponse(b []byte, r *Response) error {
	r.Reset()
	d := reader{b: b}
	r.Status = d.u32("status")
	r.Headers = d.headers(r.Headers)
	r.Body = d.bytes("body")
	if err := d.done("response"); err != nil {
		return err
	}
	if r.Status < 100 || r.Status > 999 {
		return fmt.Errorf("decode response: status %d outside 100..999", r.Status)
	}
	return nil
}

// DecodeJob decodes b into j; the fields of j alias b.
func DecodeJob(b []byte, j *Job) error {
	d := reader{b: b}
	j.Queue = d.bytes("queue")
	j.ID = d.bytes("id")
	j.Attempt = d.u32("attempt")
	j.Payload = d.bytes("payload")
	return d.done("job")
}

// DecodeJobResult decodes b into r; r.Error aliases b.
func DecodeJobResult(b []byte, r *JobResult) error {
	d := reader{b: b}
	r.Status = JobStatus(d.u32("status"))
	r.Error = d.bytes("error")
	if err := d.done("job result"); err != nil {
		return err
	}
	if r.Status > JobFail {
		return fmt.Errorf("decode job result: unknown status %d", r.Status)
	}
	return nil
}

// Kind is the tag byte of a Value.
type Kind uint8

// Value kinds.
const (
	KindNull   Kind = 0 // no payload
	KindInt    Kind = 1 // i64
	KindFloat  Kind = 2 // f64 (IEEE 754 bits)
	KindString Kind = 3 // u32 length + UTF-8 bytes (not validated)
	KindBytes  Kind = 4 // u32 length + bytes
	KindBool   Kind = 5 // u8: 0 or 1
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindString:
		return "string"
	case KindBytes:
		return "bytes"
	case KindBool:
		return "bool"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Value is one typed value in a host-call message. Exactly one payload field
// is meaningful, selected by Kind: I for int and bool (0/1), F for float, B
// for string and bytes (aliasing the decoded buffer).
type Value struct {
	Kind Kind
	I    int64
	F    float64
	B    []byte
}

// Str returns v.B as a string (a copy).
func (v Value) Str() string { return string(v.B) }

// AppendNull appends a null value.
func AppendNull(dst []byte) []byte { return append(dst, byte(KindNull)) }

// AppendInt appends an int value.
func AppendInt(dst []byte, v int64) []byte {
	dst = append(dst, byte(KindInt))
	return binary.LittleEndian.AppendUint64(dst, uint64(v))
}

// AppendFloat appends a float value.
func AppendFloat(dst []byte, v float64) []byte {
	dst = append(dst, byte(KindFloat))
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// AppendString appends a string value.
func AppendString(dst []byte, s string) []byte {
	return AppendStr(append(dst, byte(KindString)), s)
}

// AppendStringBytes appends a string value given as bytes.
func AppendStringBytes(dst []byte, s []byte) []byte {
	return AppendBytes(append(dst, byte(KindString)), s)
}

// AppendBytesValue appends a bytes value.
func AppendBytesValue(dst []byte, b []byte) []byte {
	return AppendBytes(append(dst, byte(KindBytes)), b)
}

// AppendBool appends a bool value.
func AppendBool(dst []byte, v bool) []byte {
	b := byte(0)
	if v {
		b = 1
	}
	return append(dst, byte(KindBool), b)
}

// AppendValue appends v according to its Kind.
func AppendValue(dst []byte, v Value) []byte {
	switch v.Kind {
	case KindInt:
		return AppendInt(dst, v.I)
	case KindFloat:
		return AppendFloat(dst, v.F)
	case KindString:
		return AppendStringBytes(dst, v.B)
	case KindBytes:
		return AppendBytesValue(dst, v.B)
	case KindBool:
		return AppendBool(dst, v.I != 0)
	default:
		return AppendNull(dst)
	}
}

// Values reads a sequence of Values from a message. The zero value reads
// nothing; use NewValues. Values returned alias the message.
type Values struct {
	b   []byte
	off int
}

// NewValues returns a reader over the value sequence b.
func NewValues(b []byte) Values { return Values{b: b} }

// More reports whether values remain.
func (vs *Values) More() bool { return vs.off < len(vs.b) }

// Remaining is the number of unread bytes.
func (vs *Values) Remaining() int { return len(vs.b) - vs.off }

// Next decodes the next value. At the end it returns ErrShort.
func (vs *Values) Next() (Value, error) {
	if vs.off >= len(vs.b) {
		return Value{}, fmt.Errorf("%w: no more values at offset %d", ErrShort, vs.off)
	}
	k := Kind(vs.b[vs.off])
	rest := vs.b[vs.off+1:]
	switch k {
	case KindNull:
		vs.off++
		return Value{Kind: KindNull}, nil
	case KindInt, KindFloat:
		if len(rest) < 8 {
			return Value{}, fmt.Errorf("%w: %s value at offset %d", ErrShort, k, vs.off)
		}
		u := binary.LittleEndian.Uint64(rest)
		vs.off += 9
		if k == KindInt {
			return Value{Kind: k, I: int64(u)}, nil
		}
		return Value{Kind: k, F: math.Float64frombits(u)}, nil
	case KindString, KindBytes:
		if len(rest) < 4 {
			return Value{}, fmt.Errorf("%w: %s length at offset %d", ErrShort, k, vs.off)
		}
		n := binary.LittleEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return Value{}, fmt.Errorf("%w: %s of %d bytes at offset %d, %d remain", ErrShort, k, n, vs.off, len(rest)-4)
		}
		v := Value{Kind: k, B: rest[4 : 4+n : 4+n]}
		vs.off += 5 + int(n)
		return v, nil
	case KindBool:
		if len(rest) < 1 {
			return Value{}, fmt.Errorf("%w: bool at offset %d", ErrShort, vs.off)
		}
		if rest[0] > 1 {
			return Value{}, fmt.Errorf("abi: bool byte %d at offset %d is not 0 or 1", rest[0], vs.off)
		}
		vs.off += 2
		return Value{Kind: k, I: int64(rest[0])}, nil
	}
	return Value{}, fmt.Errorf("abi: unknown value kind %d at offset %d", uint8(k), vs.off)
}

// Int reads the next value and requires it to be an int.
func (vs *Values) Int(name string) (int64, error) {
	v, err := vs.Next()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if v.Kind != KindInt {
		return 0, fmt.Errorf("%s: want int, got %s", name, v.Kind)
	}
	return v.I, nil
}

// Bytes reads the next value and requires it to be a string or bytes.
func (vs *Values) Bytes(name string) ([]byte, error) {
	v, err := vs.Next()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if v.Kind != KindString && v.Kind != KindBytes {
		return nil, fmt.Errorf("%s: want string or bytes, got %s", name, v.Kind)
	}
	return v.B, nil
}

// Bool reads the next value and requires it to be a bool.
func (vs *Values) Bool(name string) (bool, error) {
	v, err := vs.Next()
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	if v.Kind != KindBool {
		return false, fmt.Errorf("%s: want bool, got %s", name, v.Kind)
	}
	return v.I != 0, nil
}

// DecodeValues decodes every value of b, appending to dst.
func DecodeValues(dst []Value, b []byte) ([]Value, error) {
	vs := NewValues(b)
	for vs.More() {
		v, err := vs.Next()
		if err != nil {
			return dst, err
		}
		dst = append(dst, v)
	}
	return dst, nil
}

// AppendReplyOK starts an OK reply; append the reply values after it.
func AppendReplyOK(dst []byte) []byte { return append(dst, byte(OK)) }

// AppendReplyError appends a complete error reply: code then a message.
func AppendReplyError(dst []byte, c Code, msg string) []byte {
	if c == OK {
		c = ErrInternal
	}
	return AppendStr(append(dst, byte(c)), msg)
}

// ReplyError is a non-OK host-call reply as a Go error.
type ReplyError struct {
	Op   Op
	Code Code
	Msg  string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("wasmcorn %s: %s: %s", e.Op, e.Code, e.Msg)
}

// DecodeReply splits a reply into its code and, for OK, its value bytes.
// For any other code it returns a *ReplyError carrying the message.
func DecodeReply(op Op, b []byte) (Values, error) {
	if len(b) == 0 {
		return Values{}, fmt.Errorf("decode %s reply: %w: empty", op, ErrShort)
	}
	c := Code(b[0])
	if c == OK {
		return NewValues(b[1:]), nil
	}
	d := reader{b: b[1:]}
	msg := d.bytes("error message")
	if err := d.done(op.String() + " reply"); err != nil {
		return Values{}, err
	}
	return Values{}, &ReplyError{Op: op, Code: c, Msg: string(msg)}
}
