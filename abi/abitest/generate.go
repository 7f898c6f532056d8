package abitest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"github.com/wasmcorn/wasmcorn/abi"
)

// Generate returns the vectors of abi/testdata/vectors.json, built from Go
// values with the abi encoders. The checked-in file must equal
// Marshal(Generate()); `go run ./abi/internal/genvectors` rewrites it.
func Generate() []Vector {
	var g gen
	g.requests()
	g.responses()
	g.jobs()
	g.values()
	g.replies()
	g.malformed()
	return g.vs
}

type gen struct{ vs []Vector }

func (g *gen) add(name, kind string, msg []byte, readable any) {
	d, err := json.Marshal(readable)
	if err != nil {
		panic(fmt.Sprintf("abitest: vector %s: %v", name, err))
	}
	g.vs = append(g.vs, Vector{Name: name, Kind: kind, Hex: hex.EncodeToString(msg), Decoded: d})
}

func (g *gen) bad(name, kind, class, reason string, msg []byte) {
	g.vs = append(g.vs, Vector{Name: name, Kind: kind, Hex: hex.EncodeToString(msg), Error: class, Reason: reason})
}

func hdrs(kv ...string) []abi.Header {
	hs := make([]abi.Header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, abi.Header{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return hs
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func (g *gen) request(name string, r *abi.Request) {
	g.add("request/"+name, KindRequest, abi.AppendRequest(nil, r), FromRequest(r))
}

func (g *gen) requests() {
	g.request("empty", &abi.Request{})
	g.request("get", &abi.Request{
		Method: []byte("GET"), Scheme: []byte("http"), Host: []byte("example.com"),
		Path: []byte("/hello/"), RemoteAddr: []byte("127.0.0.1:50000"), RequestID: []byte("01HZX3K2"),
		Headers: hdrs("Accept", "application/json", "User-Agent", "curl/8.5.0"),
	})
	g.request("post-form", &abi.Request{
		Method: []byte("POST"), Scheme: []byte("https"), Host: []byte("shop.example.com:8443"),
		Path: []byte("/cart/items"), RawQuery: []byte("ref=home&x=%20y"), RemoteAddr: []byte("[2001:db8::1]:443"),
		RequestID: []byte("req-7"),
		Headers:   hdrs("Content-Type", "application/x-www-form-urlencoded", "Content-Length", "17", "Cookie", "a=1", "Cookie", "b=2"),
		Body:      []byte("item=42&qty=3&x=1"),
	})
	g.request("binary-body", &abi.Request{
		Method: []byte("PUT"), Scheme: []byte("http"), Host: []byte("h"), Path: []byte("/upload"),
		RemoteAddr: []byte("10.0.0.2:1234"), RequestID: []byte("b"),
		Headers: hdrs("content-type", "application/octet-stream"), Body: allBytes(),
	})
	g.request("utf8", &abi.Request{
		Method: []byte("GET"), Scheme: []byte("http"), Host: []byte("bücher.example"),
		Path: []byte("/ünïcode/路径"), RawQuery: []byte("q=%E2%9C%93"), RemoteAddr: []byte("127.0.0.1:1"),
		RequestID: []byte("u"), Headers: hdrs("X-Name", "Zoë <zoe@example.com> & co"),
	})
	many := make([]string, 0, 40)
	for i := range 20 {
		many = append(many, fmt.Sprintf("X-H%02d", i), fmt.Sprintf("v%d", i))
	}
	g.request("twenty-headers", &abi.Request{
		Method: []byte("GET"), Scheme: []byte("http"), Host: []byte("h"), Path: []byte("/"),
		Headers: hdrs(many...),
	})
}

func (g *gen) response(name string, r *abi.Response) {
	g.add("response/"+name, KindResponse, abi.AppendResponse(nil, r), FromResponse(r))
}

func (g *gen) responses() {
	g.response("empty-200", &abi.Response{Status: 200})
	g.response("json", &abi.Response{Status: 200, Headers: hdrs("Content-Type", "application/json"),
		Body: []byte(`{"message":"hello, world"}`)})
	g.response("redirect-cookies", &abi.Response{Status: 302,
		Headers: hdrs("Location", "/login?next=%2F", "Set-Cookie", "a=1; Path=/", "Set-Cookie", "b=2; HttpOnly")})
	g.response("binary-201", &abi.Response{Status: 201, Headers: hdrs("Content-Type", "application/octet-stream"), Body: allBytes()})
	g.response("status-100", &abi.Response{Status: 100})
	g.response("status-999", &abi.Response{Status: 999, Body: []byte("custom")})
}

func (g *gen) jobs() {
	for _, c := range []struct {
		name string
		j    abi.Job
	}{
		{"first-attempt", abi.Job{Queue: []byte("emails"), ID: []byte("1700000000000-0"), Attempt: 1, Payload: []byte(`{"to":"a@example.com"}`)}},
		{"retry-binary", abi.Job{Queue: []byte("thumbs"), ID: []byte("j-9"), Attempt: 4, Payload: []byte{0, 1, 0xfe, 0xff}}},
		{"empty", abi.Job{}},
	} {
		g.add("job/"+c.name, KindJob, abi.AppendJob(nil, &c.j), FromJob(&c.j))
	}
	for _, c := range []struct {
		name string
		r    abi.JobResult
	}{
		{"ok", abi.JobResult{Status: abi.JobOK}},
		{"retry", abi.JobResult{Status: abi.JobRetry, Error: []byte("smtp: connection refused")}},
		{"fail", abi.JobResult{Status: abi.JobFail, Error: []byte("invalid payload: unexpected end of JSON input")}},
	} {
		g.add("job_result/"+c.name, KindJobResult, abi.AppendJobResult(nil, &c.r), FromJobResult(&c.r))
	}
}

func (g *gen) valueSeq(name string, vs ...abi.Value) {
	var msg []byte
	for _, v := range vs {
		msg = abi.AppendValue(msg, v)
	}
	g.add("values/"+name, KindValues, msg, FromValues(vs))
}

func vInt(i int64) abi.Value     { return abi.Value{Kind: abi.KindInt, I: i} }
func vFloat(f float64) abi.Value { return abi.Value{Kind: abi.KindFloat, F: f} }
func vStr(s string) abi.Value    { return abi.Value{Kind: abi.KindString, B: []byte(s)} }
func vBytes(b []byte) abi.Value  { return abi.Value{Kind: abi.KindBytes, B: b} }
func vBool(b bool) abi.Value {
	if b {
		return abi.Value{Kind: abi.KindBool, I: 1}
	}
	return abi.Value{Kind: abi.KindBool}
}

var vNull = abi.Value{Kind: abi.KindNull}

func (g *gen) values() {
	g.valueSeq("empty")
	g.valueSeq("null", vNull)
	g.valueSeq("ints", vInt(0), vInt(1), vInt(-1), vInt(math.MaxInt64), vInt(math.MinInt64), vInt(1700000000123))
	g.valueSeq("floats", vFloat(0), vFloat(math.Copysign(0, -1)), vFloat(1.5), vFloat(-2.25e-300),
		vFloat(math.SmallestNonzeroFloat64), vFloat(math.MaxFloat64))
	g.valueSeq("float-specials", vFloat(math.NaN()), vFloat(math.Inf(1)), vFloat(math.Inf(-1)))
	g.valueSeq("strings", vStr(""), vStr("hello"), vStr("ünïcode ✓"), vStr("a\x00b"))
	g.valueSeq("string-not-utf8", vStr("\xff\xfe"))
	g.valueSeq("bytes", vBytes(nil), vBytes([]byte("text")), vBytes(allBytes()))
	g.valueSeq("bools", vBool(false), vBool(true))
	g.valueSeq("log-args", vInt(abi.LevelWarn), vStr("slow query"), vStr("sql"), vStr("SELECT 1"),
		vStr("ms"), vFloat(12.5), vStr("cached"), vBool(false), vStr("user"), vNull)
	g.valueSeq("cache-set-args", vStr("user:42"), vBytes([]byte(`{"name":"Ann"}`)), vInt(60000))
	g.valueSeq("db-query-args", vStr("main"), vStr("SELECT id, name FROM users WHERE id = ? AND active = ?"), vInt(42), vBool(true))
}

func (g *gen) reply(name string, msg []byte) {
	r, err := DecodeReply(msg)
	if err != nil {
		panic(fmt.Sprintf("abitest: reply %s: %v", name, err))
	}
	g.add("reply/"+name, KindReply, msg, r)
}

func appendVals(dst []byte, vs ...abi.Value) []byte {
	for _, v := range vs {
		dst = abi.AppendValue(dst, v)
	}
	return dst
}

func (g *gen) replies() {
	g.reply("ok-empty", abi.AppendReplyOK(nil))
	g.reply("ok-cache-get", appendVals(abi.AppendReplyOK(nil), vBytes([]byte(`{"name":"Ann"}`))))
	g.reply("ok-db-exec", appendVals(abi.AppendReplyOK(nil), vInt(1), vInt(17)))
	g.reply("ok-db-query-rows", appendVals(abi.AppendReplyOK(nil),
		vInt(3), vStr("id"), vStr("name"), vStr("score"),
		vInt(1), vStr("Ann"), vFloat(9.5),
		vInt(2), vNull, vNull))
	g.reply("ok-get-many", appendVals(abi.AppendReplyOK(nil), vBytes([]byte("a")), vNull, vBytes(nil)))
	msgs := map[abi.Code]string{
		abi.ErrNotFound:    "cache key user:42 not found",
		abi.ErrDenied:      `database "billing" is not granted to plugin "shop"`,
		abi.ErrUnavailable: "redis: connection refused",
		abi.ErrInvalid:     "db.query: sql: want string or bytes, got int",
		abi.ErrTimeout:     "request deadline exceeded",
		abi.ErrInternal:    "unexpected backend error",
		abi.ErrConflict:    "lock orders:7 is held",
		abi.ErrTooLarge:    "reply of 17825792 bytes exceeds 16777216",
		abi.ErrUnknownOp:   "this host does not implement op(0x7f)",
		abi.ErrSQL:         "no such table: userz",
	}
	for c := abi.ErrNotFound; c <= abi.ErrSQL; c++ {
		g.reply("error-"+c.String(), abi.AppendReplyError(nil, c, msgs[c]))
	}
	g.reply("error-empty-message", abi.AppendReplyError(nil, abi.ErrInternal, ""))
	g.reply("error-unknown-code", abi.AppendReplyError(nil, abi.Code(200), "a code from a newer host"))
}

func (g *gen) malformed() {
	get := abi.AppendRequest(nil, &abi.Request{Method: []byte("GET"), Path: []byte("/"), Headers: hdrs("A", "b"), Body: []byte("body")})
	g.bad("request/empty-message", KindRequest, ErrClassTruncated, "no bytes at all", nil)
	g.bad("request/short-length", KindRequest, ErrClassTruncated, "the method length has 2 of 4 bytes", get[:2])
	g.bad("request/short-method", KindRequest, ErrClassTruncated, "the method is cut after 1 byte", get[:5])
	g.bad("request/short-body", KindRequest, ErrClassTruncated, "the body is cut 1 byte short", get[:len(get)-1])
	g.bad("request/trailing-byte", KindRequest, ErrClassTrailing, "one byte after the body", append(clone(get), 0))
	huge := abi.AppendU32(nil, 0)
	for range 6 {
		huge = abi.AppendU32(huge, 0)
	}
	huge = abi.AppendU32(huge, 0xFFFFFFFF)
	g.bad("request/huge-header-count", KindRequest, ErrClassTruncated, "header count 2^32-1 with no headers following", append(clone(huge), 0, 0, 0, 0))
	g.bad("request/body-length-past-end", KindRequest, ErrClassTruncated, "the body length is 2^32-1",
		append(clone(huge[:28]), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff))

	ok := abi.AppendResponse(nil, &abi.Response{Status: 200, Headers: hdrs("A", "b"), Body: []byte("x")})
	g.bad("response/empty-message", KindResponse, ErrClassTruncated, "no bytes at all", nil)
	g.bad("response/status-only", KindResponse, ErrClassTruncated, "a status and nothing else", ok[:4])
	g.bad("response/short-header", KindResponse, ErrClassTruncated, "cut inside the first header name", ok[:13])
	g.bad("response/trailing-bytes", KindResponse, ErrClassTrailing, "two bytes after the body", append(clone(ok), 1, 2))
	g.bad("response/status-99", KindResponse, ErrClassInvalid, "status below 100",
		abi.AppendResponse(nil, &abi.Response{Status: 99}))
	g.bad("response/status-1000", KindResponse, ErrClassInvalid, "status above 999",
		abi.AppendResponse(nil, &abi.Response{Status: 1000}))
	g.bad("response/huge-header-count", KindResponse, ErrClassTruncated, "header count 2^32-1",
		[]byte{200, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})

	job := abi.AppendJob(nil, &abi.Job{Queue: []byte("q"), ID: []byte("1"), Attempt: 1, Payload: []byte("p")})
	g.bad("job/short-attempt", KindJob, ErrClassTruncated, "the attempt has 2 of 4 bytes", job[:12])
	g.bad("job/no-payload", KindJob, ErrClassTruncated, "the message ends after the attempt", job[:14])
	g.bad("job/trailing-byte", KindJob, ErrClassTrailing, "one byte after the payload", append(clone(job), 9))
	g.bad("job_result/unknown-status", KindJobResult, ErrClassInvalid, "status 3 is not ok, retry or fail",
		abi.AppendJobResult(nil, &abi.JobResult{Status: 3}))
	g.bad("job_result/short", KindJobResult, ErrClassTruncated, "no error string", []byte{1, 0, 0, 0})
	g.bad("job_result/trailing-byte", KindJobResult, ErrClassTrailing, "one byte after the error",
		append(abi.AppendJobResult(nil, &abi.JobResult{Status: abi.JobRetry, Error: []byte("e")}), 0))

	g.bad("values/unknown-kind-6", KindValues, ErrClassInvalid, "tag 6 is not a kind", []byte{6})
	g.bad("values/unknown-kind-255-after-int", KindValues, ErrClassInvalid, "a valid int, then tag 255",
		append(abi.AppendInt(nil, 7), 255))
	g.bad("values/short-int", KindValues, ErrClassTruncated, "an int with 5 of 8 bytes", []byte{1, 1, 2, 3, 4, 5})
	g.bad("values/short-float", KindValues, ErrClassTruncated, "a float with no payload", []byte{2})
	g.bad("values/string-past-end", KindValues, ErrClassTruncated, "a string of length 10 with 3 bytes",
		[]byte{3, 10, 0, 0, 0, 'a', 'b', 'c'})
	g.bad("values/bytes-huge-length", KindValues, ErrClassTruncated, "a bytes value of length 2^32-1",
		[]byte{4, 0xff, 0xff, 0xff, 0xff})
	g.bad("values/short-string-length", KindValues, ErrClassTruncated, "a string length with 2 of 4 bytes", []byte{3, 1, 0})
	g.bad("values/bool-2", KindValues, ErrClassInvalid, "bool byte 2", []byte{5, 2})
	g.bad("values/bool-no-byte", KindValues, ErrClassTruncated, "a bool tag without its byte", []byte{5})

	g.bad("reply/empty-message", KindReply, ErrClassTruncated, "no code byte", nil)
	g.bad("reply/error-no-message", KindReply, ErrClassTruncated, "an error code without its message", []byte{byte(abi.ErrNotFound)})
	g.bad("reply/error-short-message", KindReply, ErrClassTruncated, "a message of length 5 with 2 bytes",
		[]byte{byte(abi.ErrInternal), 5, 0, 0, 0, 'o', 'o'})
	g.bad("reply/error-trailing-byte", KindReply, ErrClassTrailing, "one byte after the message",
		append(abi.AppendReplyError(nil, abi.ErrDenied, "no"), 0))
	g.bad("reply/ok-bad-value", KindReply, ErrClassInvalid, "an ok reply whose second value has tag 9",
		append(abi.AppendInt(abi.AppendReplyOK(nil), 1), 9))
	g.bad("reply/ok-short-value", KindReply, ErrClassTruncated, "an ok reply with an int of 1 byte",
		[]byte{byte(abi.OK), byte(abi.KindInt), 1})
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
