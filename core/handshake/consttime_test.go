package handshake

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// secretName matches the names of values that carry a MAC, a secret or
// received auth data in core: comparing them with == or bytes.Equal would
// leak through timing how much of a guess was right.
var secretName = regexp.MustCompile(`(?i)^(want|data|got|expected|sum|digest)$|mac|secret|authdata|exporter|binding`)

// authMethodName matches the constants naming auth methods: public.
var authMethodName = regexp.MustCompile(`^Auth[A-Z][A-Za-z0-9]*$`)

// authSources are the files of the core machines that compute, receive
// or check auth data.
var authSources = []string{"auth.go", "auth_cb.go", "auth_prepared.go", "handshake.go", "tlsbind.go", "chanauth.go"}

// timingLeaks returns every comparison in f that is not constant time and
// involves a value named like a secret: ==, != and the calls below, unless
// the other side is a literal, nil or a len(...).
func timingLeaks(fset *token.FileSet, f *ast.File) []string {
	var out []string
	secretish := func(e ast.Expr) bool {
		found := false
		ast.Inspect(e, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "len" {
					return false // a length is public
				}
			case *ast.Ident:
				if secretName.MatchString(n.Name) {
					found = true
				}
			}
			return !found
		})
		return found
	}
	public := func(e ast.Expr) bool {
		switch e := e.(type) {
		case *ast.BasicLit:
			return true
		case *ast.Ident:
			// nil, booleans and the auth method names (AuthHMAC, ...).
			return e.Name == "nil" || e.Name == "true" || e.Name == "false" || authMethodName.MatchString(e.Name)
		case *ast.SelectorExpr:
			// wire.AuthHMAC, ...
			pkg, ok := e.X.(*ast.Ident)
			return ok && pkg.Name == "wire" && authMethodName.MatchString(e.Sel.Name)
		case *ast.CallExpr:
			id, ok := e.Fun.(*ast.Ident)
			return ok && id.Name == "len"
		}
		return false
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && !public(n.X) && !public(n.Y) && (secretish(n.X) || secretish(n.Y)) {
				out = append(out, fset.Position(n.Pos()).String()+": "+n.Op.String())
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok {
					switch pkg.Name + "." + sel.Sel.Name {
					case "bytes.Equal", "bytes.Compare", "strings.Compare", "strings.EqualFold", "reflect.DeepEqual", "slices.Equal", "maps.Equal":
						for _, a := range n.Args {
							if secretish(a) {
								out = append(out, fset.Position(n.Pos()).String()+": "+pkg.Name+"."+sel.Sel.Name)
								break
							}
						}
					}
				}
			}
		case *ast.SwitchStmt:
			// switch secret { case x: } compares with ==.
			if n.Tag != nil && secretish(n.Tag) {
				out = append(out, fset.Position(n.Pos()).String()+": switch")
			}
		}
		return true
	})
	return out
}

// constantTimeCalls counts, per function, the calls of
// subtle.ConstantTimeCompare and hmac.Equal in f.
func constantTimeCalls(f *ast.File) map[string]int {
	calls := map[string]int{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok {
				if sel, ok := c.Fun.(*ast.SelectorExpr); ok {
					if pkg, ok := sel.X.(*ast.Ident); ok {
						if s := pkg.Name + "." + sel.Sel.Name; s == "subtle.ConstantTimeCompare" || s == "hmac.Equal" {
							calls[fd.Name.Name]++
						}
					}
				}
			}
			return true
		})
	}
	return calls
}

// TestConstantTimeComparisons: a vet-style check of core's auth source. No
// comparison of a value named like a MAC, a secret or received auth data
// is ==, != or bytes.Equal; verifyAuth, verifyAuthCB (behind VerifyAuth, VerifyAuthCB) and verifyExpected
// (every auth check the handshake makes goes through them; the last for a
// check prepared in advance) compare with subtle.ConstantTimeCompare.
func TestConstantTimeComparisons(t *testing.T) {
	// Every file of the core machines that names a MAC or auth data is an
	// auth source; the auth sources live in this package.
	var files []string
	for _, pat := range []string{"*.go", "../wire/*.go", "../rendezvous/*.go", "../peer/*.go"} {
		more, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, more...)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || slices.Contains(authSources, name) {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var name string
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if pkg, ok := n.X.(*ast.Ident); ok {
					name = pkg.Name + "." + n.Sel.Name
				}
			case *ast.Ident:
				name = n.Name
			}
			switch name {
			case "hmac.New", "subtle.ConstantTimeCompare", "hmac.Equal", "VerifyAuth", "VerifyAuthCB", "AuthData", "AuthDataCB":
				t.Errorf("%s: %s outside the auth sources %v: add the file there", fset.Position(n.Pos()), name, authSources)
			}
			return true
		})
	}
	ct := map[string]int{}
	for _, name := range authSources {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, leak := range timingLeaks(fset, f) {
			t.Errorf("%s: comparison of a secret-like value that is not constant time", leak)
		}
		for fn, n := range constantTimeCalls(f) {
			ct[fn] += n
		}
	}
	for _, fn := range []string{"verifyAuth", "verifyAuthCB", "verifyExpected", "finishBound"} {
		if ct[fn] != 1 {
			t.Errorf("%s makes %d constant-time comparisons, want exactly 1", fn, ct[fn])
		}
	}

	// The check catches what it is meant to catch.
	bad := `package p
func f(want, data string, mac []byte, got []byte) bool {
	if want == data { return true }
	switch data { case "x": }
	return bytes.Equal(mac, got) && len(mac) == 64 && data != ""
}`
	bf, err := parser.ParseFile(fset, "bad.go", bad, 0)
	if err != nil {
		t.Fatal(err)
	}
	if leaks := timingLeaks(fset, bf); len(leaks) != 3 {
		t.Errorf("the checker found %v in the bad example, want the ==, the switch and bytes.Equal", leaks)
	}
}
