package script

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitKeepsJSONWhole(t *testing.T) {
	got, err := split(`send b#p ["a b", {"k": [1, 2]}] "x y" n=3`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"send", "b#p", `["a b", {"k": [1, 2]}]`, `"x y"`, "n=3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("split = %q, want %q", got, want)
	}
	if _, err := split(`send ["a`); err == nil {
		t.Fatal("unbalanced line accepted")
	}
}

func TestRunComparesAndRewrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.txt")
	const text = "# a story\necho one\n----\nwrong\n\n# the end\nnothing\n----\nok\n\n# trailer\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	h := func(c *Cmd) (string, error) {
		if c.Name == "echo" {
			return strings.Join(c.Args, " "), nil
		}
		return "", nil
	}
	// Comparing: the first block's output differs, the second matches.
	diffs, err := runFile(path, false, h)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || !strings.Contains(diffs[0], "s.txt:2: echo one") || !strings.Contains(diffs[0], "--- got\none") {
		t.Fatalf("diffs = %q, want one for the echo block", diffs)
	}
	if b, _ := os.ReadFile(path); string(b) != text {
		t.Fatal("comparing changed the file")
	}
	RunFile(t, path, true, h)
	b, _ := os.ReadFile(path)
	const want = "# a story\necho one\n----\none\n\n# the end\nnothing\n----\nok\n\n# trailer\n"
	if string(b) != want {
		t.Fatalf("rewritten file:\n%s\nwant:\n%s", b, want)
	}
	RunFile(t, path, false, h) // now it passes
	if _, err := runFile(path, false, func(*Cmd) (string, error) { return "", os.ErrInvalid }); err == nil || !strings.Contains(err.Error(), "s.txt:2") {
		t.Fatalf("handler error = %v, want it at s.txt:2", err)
	}
}
