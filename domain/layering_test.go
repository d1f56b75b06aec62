package domain_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering enforces the dependency rules of the codebase: domain
// imports only the standard library, projections only domain (and the
// standard library), and no adapter imports another adapter or cmd.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}`, "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	const mod = "github.com/bookworm-ledger/ledger/"
	std := func(p string) bool { return !strings.Contains(strings.Split(p, "/")[0], ".") }
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		pkg, imports, deps := parts[0], strings.Fields(parts[1]), strings.Fields(parts[2])
		rel := strings.TrimPrefix(pkg, mod)
		switch {
		case rel == "domain":
			checked++
			for _, d := range deps {
				if !std(d) {
					t.Errorf("domain depends on %s: it may use the standard library only", d)
				}
			}
		case rel == "projections":
			checked++
			for _, d := range deps {
				if !std(d) && d != mod+"domain" {
					t.Errorf("projections depends on %s: it may use domain and the standard library only", d)
				}
			}
		case strings.HasPrefix(rel, "adapters/"):
			checked++
			own := strings.SplitN(strings.TrimPrefix(rel, "adapters/"), "/", 2)[0]
			for _, im := range imports {
				r := strings.TrimPrefix(im, mod)
				if r == im {
					continue
				}
				if strings.HasPrefix(r, "cmd/") {
					t.Errorf("%s imports %s: adapters never import cmd", rel, im)
				}
				if strings.HasPrefix(r, "adapters/") && strings.SplitN(strings.TrimPrefix(r, "adapters/"), "/", 2)[0] != own {
					t.Errorf("%s imports %s: adapters do not import each other", rel, im)
				}
			}
		}
	}
	if checked < 6 {
		t.Fatalf("only %d packages checked: is go list seeing the module?", checked)
	}
}
