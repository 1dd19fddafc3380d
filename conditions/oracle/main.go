// Command gjson-oracle prints Katib's verdict for each condition and document it reads, using
// the Go gjson library Katib itself calls, so the Rust evaluator can be checked against it.
//
// Input: one JSON array per line, ["<condition>", <document>]. Output: one line per input,
// "1" when the condition is met (the result is an object, or an array with an element), else "0"
// (Katib's GetDeployedJobStatus rule).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/tidwall/gjson"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var pair []json.RawMessage
		if err := json.Unmarshal(in.Bytes(), &pair); err != nil || len(pair) != 2 {
			fmt.Fprintf(os.Stderr, "bad input line: %v\n", err)
			os.Exit(2)
		}
		var path string
		if err := json.Unmarshal(pair[0], &path); err != nil {
			fmt.Fprintf(os.Stderr, "bad condition: %v\n", err)
			os.Exit(2)
		}
		result := gjson.Get(string(pair[1]), path)
		met := result.IsObject() || (result.IsArray() && len(result.Array()) > 0)
		if met {
			fmt.Fprintln(out, "1")
		} else {
			fmt.Fprintln(out, "0")
		}
	}
}
