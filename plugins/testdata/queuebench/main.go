// Command queuebench is a test plugin for the queue benchmark
// (host.BenchmarkQueueThroughPlugin): POST /submit queues its body on queue
// "bench", and its job handler for "bench" decodes the payload as JSON, as
// a real handler would before doing its work. A payload that is not JSON
// fails the job permanently.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	"github.com/wasmcorn/wasmcorn/sdk-go/queue"
)

const queueName = "bench"

func submit(w http.ResponseWriter, r *http.Request) {
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	id, err := queue.Submit(queueName, payload, 0)
	if err != nil {
		http.Error(w, "submit: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, id)
}

func run(_ context.Context, job wasmcorn.Job) error {
	var v map[string]any
	if err := json.Unmarshal(job.Payload, &v); err != nil {
		return wasmcorn.Permanent(errors.New("queuebench: payload is not JSON"))
	}
	return nil
}

func main() {}

func init() {
	wasmcorn.HandleJob(queueName, run)
	wasmcorn.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/submit" {
			http.NotFound(w, r)
			return
		}
		submit(w, r)
	}))
}
