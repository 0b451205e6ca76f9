package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestImportPropsAreOffsetsNews: the consume row's consumer is configured as
// offsets.New configures statesync's. New does not export its ConfigMap, so
// this reads offsets/consumer.go: every property New sets (cm["k"] = v or
// setDefault(cm, "k", v)) must be set by importProps, to the same value
// where New's is a literal; and importProps sets nothing New does not.
func TestImportPropsAreOffsetsNews(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../../../offsets/consumer.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "New" && d.Recv == nil {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("offsets/consumer.go has no func New: update importProps and this test")
	}
	lit := func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				s, err := strconv.Unquote(e.Value)
				return s, err == nil
			}
			return e.Value, true
		case *ast.Ident:
			if e.Name == "true" || e.Name == "false" {
				return e.Name, true
			}
		}
		return "", false
	}
	type prop struct {
		value   string
		literal bool
	}
	news := map[string]prop{}
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Lhs) != 1 || len(n.Rhs) != 1 {
				return true
			}
			if ix, ok := n.Lhs[0].(*ast.IndexExpr); ok {
				if id, ok := ix.X.(*ast.Ident); ok && id.Name == "cm" {
					if k, ok := lit(ix.Index); ok {
						v, isLit := lit(n.Rhs[0])
						news[k] = prop{v, isLit}
					}
				}
			}
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "setDefault" && len(n.Args) == 3 {
				if k, ok := lit(n.Args[1]); ok {
					v, isLit := lit(n.Args[2])
					news[k] = prop{v, isLit}
				}
			}
		}
		return true
	})
	if len(news) < 10 {
		t.Fatalf("found only %d properties in offsets.New (%v): has it changed shape? update importProps and this test", len(news), news)
	}
	ours := importProps("b:9092", "g", "")
	for k, p := range news {
		v, ok := ours[k]
		if !ok {
			t.Errorf("offsets.New sets %s; importProps does not", k)
			continue
		}
		if p.literal && fmt.Sprint(v) != p.value {
			t.Errorf("%s: offsets.New sets %q, importProps %q", k, p.value, fmt.Sprint(v))
		}
	}
	prepared := map[string]bool{"bootstrap.servers": true, "go.logs.channel.enable": true, "client.id": true, "log.connection.close": true}
	for k := range ours {
		if _, ok := news[k]; !ok && !prepared[k] {
			t.Errorf("importProps sets %s, which offsets.New does not", k)
		}
	}
}
