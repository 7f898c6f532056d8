package workload

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestChecks(t *testing.T) {
	items, err := json.Marshal(Items())
	if err != nil {
		t.Fatal(err)
	}
	big, err := json.Marshal(ItemsN(BigItems))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		body string
		ok   bool
	}{
		{"/jsonbig", string(big), true},
		{"/jsonbig", string(items), false}, // 10 items are not the big list
		{"/json", HelloJSON, true},
		{"/json", `{"message": "hello, world"}`, false}, // must be compact, like every target
		{"/jsonstruct", string(items), true},
		{"/jsonstruct", `{"count":9,"items":[]}`, false},
		{"/db", `{"id":7,"randomNumber":123,"cached":"w123"}`, true},
		{"/db", `{"id":7,"randomNumber":123}`, false}, // the cache read is part of the work
		{"/cached", `{"id":7,"randomNumber":123}`, true},
		{"/queue", `{"queued":true}`, true},
		{"/queue", `{"queued":false}`, false},
		{"/static/" + StaticName, string(StaticContent()), true},
		{"/static/" + StaticName, "short", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := Check(tt.path)(200, []byte(tt.body))
			if (err == nil) != tt.ok {
				t.Errorf("Check(%s)(%.40q) = %v, want ok %v", tt.path, tt.body, err, tt.ok)
			}
		})
	}
	if Check("/nope") != nil {
		t.Error("unknown path has a check")
	}
}

func TestData(t *testing.T) {
	l := Items()
	if l.Count != 10 || len(l.Items) != 10 || l.Items[9].ID != 10 || l.Items[0].Name != "item-00001" {
		t.Errorf("items %+v", l)
	}
	if b := ItemsN(BigItems); b.Count != BigItems || len(b.Items) != BigItems || b.Items[BigItems-1].ID != BigItems || b.Items[9].Name != l.Items[9].Name {
		t.Errorf("big items: count %d, %d items", b.Count, len(b.Items))
	}
	seen := map[int]bool{}
	for id := 1; id <= Rows; id++ {
		r := RandomNumber(id)
		if r < 1 || r > 10000 {
			t.Fatalf("RandomNumber(%d) = %d", id, r)
		}
		seen[r] = true
	}
	if len(seen) != Rows {
		t.Errorf("%d distinct random numbers, want %d", len(seen), Rows)
	}
	p := IDPaths("/db")
	if len(p) != Rows || p[0] != "/db?id=1" || p[Rows-1] != "/db?id=1000" {
		t.Errorf("IDPaths: %d paths, first %q last %q", len(p), p[0], p[len(p)-1])
	}
	if b := StaticContent(); len(b) != StaticSize || strings.ContainsAny(string(b), "\x00\n") {
		t.Error("static content")
	}
}
