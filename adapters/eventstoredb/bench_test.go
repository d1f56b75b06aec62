package eventstoredb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
	"github.com/bookworm-ledger/ledger/domain"
)

// Each benchmark measures the adapter and, in the same run against the
// same server, the raw client doing the same thing; it prints the ratio
// (adapter time / raw time).

var payload = []byte(`{"orderId":"` + uuid.NewString() + `","pad":"` + strings.Repeat("x", 440) + `"}`) // ~500 bytes

func rawClient(b *testing.B, srv *esdbtest.Server) *esdb.Client {
	conf, err := esdb.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		b.Fatal(err)
	}
	conf.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(conf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

func benchLog(b *testing.B, srv *esdbtest.Server) *eventstoredb.Log {
	l, err := eventstoredb.Open(context.Background(), eventstoredb.Config{ConnectionString: srv.ConnectionString()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}

// compare runs adapter and raw as sub-benchmarks and prints the ratio.
func compare(b *testing.B, adapter, raw func(b *testing.B)) {
	var a, r float64
	b.Run("adapter", func(b *testing.B) { adapter(b); a = float64(b.Elapsed().Nanoseconds()) / float64(b.N) })
	b.Run("raw", func(b *testing.B) { raw(b); r = float64(b.Elapsed().Nanoseconds()) / float64(b.N) })
	if a > 0 && r > 0 {
		fmt.Printf("%s: adapter %.0f ns/op, raw client %.0f ns/op, ratio %.2f\n", b.Name(), a, r, a/r)
	}
}

// streamFor spreads appends over order-sized streams (20 events each).
func streamFor(worker, i int64) string { return fmt.Sprintf("order-%d-%d", worker, i/20) }

func benchAppend(b *testing.B, writers int) {
	srv := esdbtest.MustStart(b, esdbtest.WithoutSystemEvents())
	l := benchLog(b, srv)
	c := rawClient(b, srv)
	ctx := context.Background()
	run := func(b *testing.B, tag string, appendOne func(stream string) error) {
		var worker atomic.Int64
		b.SetBytes(int64(len(payload)))
		b.SetParallelism((writers + 1) / 2) // 2 cores: parallelism × GOMAXPROCS goroutines
		if writers == 1 {
			for i := 0; i < b.N; i++ {
				if err := appendOne(tag + streamFor(0, int64(i))); err != nil {
					b.Fatal(err)
				}
			}
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			w := worker.Add(1)
			var i int64
			for pb.Next() {
				if err := appendOne(tag + streamFor(w, i)); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	}
	n := 0
	compare(b,
		func(b *testing.B) {
			n++
			run(b, fmt.Sprintf("a%d-", n), func(stream string) error {
				_, err := l.Append(ctx, stream, domain.Any, domain.EventData{ID: uuid.NewString(), Type: "Bench", Data: payload, Metadata: []byte(`{"$correlationId":"c"}`)})
				return err
			})
		},
		func(b *testing.B) {
			n++
			run(b, fmt.Sprintf("r%d-", n), func(stream string) error {
				_, err := c.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{}, esdb.EventData{EventID: uuid.New(), EventType: "Bench", ContentType: esdb.ContentTypeJson, Data: payload, Metadata: []byte(`{"$correlationId":"c"}`)})
				return err
			})
		})
}

func BenchmarkAppend1(b *testing.B)  { benchAppend(b, 1) }
func BenchmarkAppend64(b *testing.B) { benchAppend(b, 64) }

const preloaded = 5000

// preload writes preloaded events to 250 order streams.
func preload(b *testing.B) *esdbtest.Server {
	srv := esdbtest.MustStart(b)
	c := rawClient(b, srv)
	for i := 0; i < preloaded; i += 20 {
		evs := make([]esdb.EventData, 20)
		for j := range evs {
			evs[j] = esdb.EventData{EventID: uuid.New(), EventType: "Bench", ContentType: esdb.ContentTypeJson, Data: payload}
		}
		if _, err := c.AppendToStream(context.Background(), fmt.Sprintf("order-%d", i), esdb.AppendToStreamOptions{}, evs...); err != nil {
			b.Fatal(err)
		}
	}
	return srv
}

// BenchmarkReadAll: one op reads the whole preloaded log.
func BenchmarkReadAll(b *testing.B) {
	srv := preload(b)
	l := benchLog(b, srv)
	c := rawClient(b, srv)
	ctx := context.Background()
	compare(b,
		func(b *testing.B) {
			b.SetBytes(preloaded * int64(len(payload)))
			for i := 0; i < b.N; i++ {
				got, err := l.ReadAll(ctx, nil, 0)
				if err != nil || len(got) != preloaded {
					b.Fatal(len(got), err)
				}
			}
		},
		func(b *testing.B) {
			b.SetBytes(preloaded * int64(len(payload)))
			for i := 0; i < b.N; i++ {
				rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{}, ^uint64(0))
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					e, err := rs.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if !strings.HasPrefix(e.OriginalEvent().StreamID, "$") {
						n++
					}
				}
				rs.Close()
				if n != preloaded {
					b.Fatal(n)
				}
			}
		})
}

// BenchmarkCatchUp: one op subscribes from the start with the "order-"
// prefix and receives every preloaded event.
func BenchmarkCatchUp(b *testing.B) {
	srv := preload(b)
	l := benchLog(b, srv)
	c := rawClient(b, srv)
	ctx := context.Background()
	compare(b,
		func(b *testing.B) {
			b.SetBytes(preloaded * int64(len(payload)))
			for i := 0; i < b.N; i++ {
				sub, err := l.Subscribe(ctx, domain.SubscribeOptions{StreamPrefix: "order-"})
				if err != nil {
					b.Fatal(err)
				}
				for n := 0; n < preloaded; n++ {
					if _, err := sub.Next(ctx); err != nil {
						b.Fatal(err)
					}
				}
				_ = sub.Close()
			}
		},
		func(b *testing.B) {
			b.SetBytes(preloaded * int64(len(payload)))
			for i := 0; i < b.N; i++ {
				sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: esdb.Start{}, Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"order-"}}})
				if err != nil {
					b.Fatal(err)
				}
				for n := 0; n < preloaded; {
					m := sub.Recv()
					if m.SubscriptionDropped != nil {
						b.Fatal(m.SubscriptionDropped.Error)
					}
					if m.EventAppeared != nil {
						n++
					}
				}
				_ = sub.Close()
			}
		})
}
