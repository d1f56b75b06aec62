# ledger: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/ledger
PKGS := ./...
FUZZTIME ?= 10s
LONG_FUZZTIME ?= 5m

.PHONY: all build run test test-go fuzz-short fuzz bench demo chaos chaos-poison chaos-ha lint specs-deps specs-validate \
        broker browser up down clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/ledger

## broker: make sure RabbitMQ listens on 127.0.0.1:5672 (starts or installs it)
broker:
	@.ci/ensure-rabbitmq

## browser: make sure Debian's chromium and axe-core (npm) are installed (browser tests)
browser:
	@.ci/ensure-chromium
	@.ci/ensure-node
	@cd cmd/ledger/testdata/axe && (test -f node_modules/axe-core/axe.min.js || npm ci --no-audit --no-fund --loglevel=error)

## specs-deps: install the official AsyncAPI parser (npm) used to validate specs/asyncapi.yaml
specs-deps:
	@.ci/ensure-node
	@cd specs/validate && (test -d node_modules/@asyncapi/parser || npm ci --no-audit --no-fund --loglevel=error)

specs-validate: specs-deps
	cd specs/validate && node validate.mjs ../asyncapi.yaml

## run: build and run the service on the embedded store against the local broker
run: broker build
	./$(BIN) serve $(ARGS)

## test: every test, with the race detector, plus short fuzz runs
test: broker browser specs-deps
	$(MAKE) test-go
	$(MAKE) fuzz-short

test-go:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

fuzz-short:
	@.ci/fuzz $(FUZZTIME)

## fuzz: the long fuzz runs
fuzz: broker
	@.ci/fuzz $(LONG_FUZZTIME)

## bench: broker ceiling vs the ledger end to end, plus the package benchmarks
bench: broker build
	$(GO) run ./cmd/ledger-bench
	$(GO) test -run '^$$' -bench . -benchmem ./domain/ ./adapters/bolt/

## demo: publish a realistic mix of BookWorm traffic to the local broker
demo: broker build
	./$(BIN) simulate $(ARGS)

## chaos: kill -9 and broker restarts under load, then the poison run; prints the loss/duplicate tables
chaos: broker build
	$(GO) run ./cmd/ledger-chaos $(ARGS)
	$(MAKE) chaos-poison

## chaos-poison: 10,000 orders, 1% of them over-large (unpublishable to AccelByte), 12 kill -9
chaos-poison: broker build
	$(GO) run ./cmd/ledger-chaos -orders 10000 -duration 60s -poison-every 100 -broker-restarts 0 $(POISON_ARGS)

## chaos-ha: 3 instances on one EventStoreDB (esdbtest) and one vhost, 10,000 orders, 5 leader kill -9, 2 leader connection cuts
chaos-ha: broker build
	$(GO) run ./cmd/ledger-chaos ha -ledger-bin $(BIN) -orders 10000 -kills 5 -cuts 2 $(HA_ARGS)

lint:
	@test -z "$$(gofmt -l . | grep -v '^specs/validate/node_modules' )" || (gofmt -l . ; exit 1)
	$(GO) vet $(PKGS)

up:
	docker compose up -d --build

down:
	docker compose down

clean:
	rm -rf bin
