package domain_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering enforces the dependency rules of the codebase: domain and
// its subpackages (codec) import only the standard library and each other,
// projections only those and the standard library, ingest no package of the
// module but those (so the application layer never reaches an adapter), and
// no adapter imports another adapter or cmd.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}`, "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	const mod = "github.com/bookworm-ledger/ledger/"
	std := func(p string) bool { return !strings.Contains(strings.Split(p, "/")[0], ".") }
	inDomain := func(p string) bool { return p == mod+"domain" || strings.HasPrefix(p, mod+"domain/") }
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		pkg, imports, deps := parts[0], strings.Fields(parts[1]), strings.Fields(parts[2])
		rel := strings.TrimPrefix(pkg, mod)
		switch {
		case inDomain(pkg):
			checked++
			for _, d := range deps {
				if !std(d) && !inDomain(d) {
					t.Errorf("%s depends on %s: it may use the standard library only", rel, d)
				}
			}
		case rel == "projections":
			checked++
			for _, d := range deps {
				if !std(d) && !inDomain(d) {
					t.Errorf("projections depends on %s: it may use domain/... and the standard library only", d)
				}
			}
		case rel == "ingest":
			checked++
			for _, im := range imports {
				if r := strings.TrimPrefix(im, mod); r != im && !inDomain(im) {
					t.Errorf("ingest imports %s: the application layer uses domain/... only, never an adapter", im)
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
	if checked < 7 {
		t.Fatalf("only %d packages checked: is go list seeing the module?", checked)
	}
}
