package specs_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The compose stack is loaded and validated by compose-go, the loader
// `docker compose config` runs, so a file docker would refuse fails here
// on machines without docker.
func TestComposeStackRunsTwoInstancesOnOneStore(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{filepath.Join("..", "docker-compose.yml")}, cli.WithName("ledger"))
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "docker compose config would refuse docker-compose.yml")

	var ledgers []types.ServiceConfig
	for _, s := range p.Services {
		if s.Build != nil {
			ledgers = append(ledgers, s)
		}
	}
	require.Len(t, ledgers, 2, "two ledger instances")
	ids, hostPorts, volumes := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range ledgers {
		env := func(k string) string {
			v := s.Environment[k]
			require.NotNil(t, v, "%s: %s is not set", s.Name, k)
			return *v
		}
		assert.Equal(t, "esdb", env("LEDGER_STORE"), s.Name)
		assert.Equal(t, "rabbitmq", env("LEDGER_LEADER_ELECTION"), s.Name)
		assert.Contains(t, env("LEDGER_ESDB_URL"), "eventstoredb:2113", s.Name)
		ids[env("LEDGER_INSTANCE")] = true
		assert.Contains(t, s.DependsOn, "eventstoredb")
		assert.Contains(t, s.DependsOn, "rabbitmq")
		for _, port := range s.Ports {
			hostPorts[port.Published] = true
		}
		for _, v := range s.Volumes {
			if v.Target == env("LEDGER_DATA_DIR") {
				volumes[v.Source] = true
			}
		}
	}
	assert.Len(t, ids, 2, "each instance its own id")
	assert.Len(t, hostPorts, 2, "each instance its own port")
	assert.Len(t, volumes, 2, "each instance its own read model")
}
