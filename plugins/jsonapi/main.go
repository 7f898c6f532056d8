// Command jsonapi serves JSON built from Go structs with encoding/json:
//
//	GET /jsonapi/        a fixed list of 10 items (the "JSON from a struct"
//	                     benchmark)
//	GET /jsonapi/items   n items computed per request (?n=, default 10,
//	                     at most 10000): the compute-heavy variant
//	GET /jsonapi/items/{id}  one item
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

// Item is one element of the list.
type Item struct {
	ID        int       `json:"id"`
	Name      string    `json:"name"`
	Price     float64   `json:"price"`
	Tags      []string  `json:"tags"`
	InStock   bool      `json:"in_stock"`
	CreatedAt time.Time `json:"created_at"`
}

// List is the response document.
type List struct {
	Count int    `json:"count"`
	Items []Item `json:"items"`
}

const maxItems = 10000

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

var tagSet = []string{"red", "green", "blue", "small", "large", "sale"}

func item(id int) Item {
	// A little arithmetic per item so that larger n costs real CPU.
	h := uint32(id) * 2654435761
	return Item{
		ID:        id,
		Name:      fmt.Sprintf("item-%05d", id),
		Price:     float64(h%100000) / 100,
		Tags:      []string{tagSet[h%6], tagSet[(h>>8)%6]},
		InStock:   h%3 != 0,
		CreatedAt: epoch.Add(time.Duration(id) * time.Hour),
	}
}

func items(n int) List {
	l := List{Count: n, Items: make([]Item, n)}
	for i := range l.Items {
		l.Items[i] = item(i + 1)
	}
	return l
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func main() {}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jsonapi/{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, items(10))
	})
	mux.HandleFunc("GET /jsonapi/items", func(w http.ResponseWriter, r *http.Request) {
		n := 10
		if s := r.URL.Query().Get("n"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 || v > maxItems {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("n must be an integer in 0..%d", maxItems)})
				return
			}
			n = v
		}
		writeJSON(w, http.StatusOK, items(n))
	})
	mux.HandleFunc("GET /jsonapi/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 1 || id > maxItems {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such item"})
			return
		}
		writeJSON(w, http.StatusOK, item(id))
	})
	wasmcorn.Serve(mux)
}
