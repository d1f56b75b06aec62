package codec_test

import (
	"strings"
	"testing"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

func TestBodyRejectsWhatItCannotRender(t *testing.T) {
	cfg := domain.DefaultOutboundConfig()
	msgs := checkoutIntents(t, cfg)
	cmd := msgs[1]
	cmd.Name = "FooCommand"
	if _, err := codec.Body(cfg, cmd); err == nil {
		t.Error("unknown command rendered")
	}
	kind := msgs[0]
	kind.Kind = "carrier-pigeon"
	if err := codec.RenderBodies(cfg, []domain.Outbound{msgs[0], kind}); err == nil {
		t.Error("unknown kind rendered")
	}
}

// The bodies escape strings as the stored form does: '&', '<' and '>' as
// they are, control characters other than \n, \r and \t as \u00XX.
// (encoding/json would write "\b" and "\f", and escape "<>&" by default.)
func TestBodyEscaping(t *testing.T) {
	cfg := domain.DefaultOutboundConfig()
	msgs := checkoutIntents(t, cfg)
	cmd := msgs[1]
	cmd.Order.FullName = ptr("A&B <x>\b\f\n\u2028")
	b, err := codec.Body(cfg, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"fullName":"A&B <x>\u0008\u000c\n\u2028"`; !strings.Contains(string(b), want) {
		t.Fatalf("%s lacks %s", b, want)
	}
}
