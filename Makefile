# salewatch developer entry points. `make demo` and `make test` do all set-up themselves.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install lint test demo demo-stop drill soak two-workers-loop stack-up stack-down cluster-up cluster-tests benchmarks schemas

install:  ## Python package with dev tools (services are installed by `salewatch stack up`)
	$(PIP) install --quiet --disable-pip-version-check -e '.[dev]'

lint:  ## ruff + mypy --strict
	ruff check .
	ruff format --check .
	mypy

test: install  ## lint, then every test (unit + integration on the real local stack)
	bash scripts/test.sh

demo: install  ## a simulated sale on the local stack with live metrics
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh stop

drill: install  ## a payment outage at real speed on the local stack, paging to a webhook (~9 min)
	bash scripts/drill.sh

soak: install  ## 30 min at 5,000 events/s, 2 workers, a random fault every 3 min; exact at the end (35-55 min; own throwaway services)
	$(PYTHON) -m tests.faults.soak --minutes 30 --rate 5000 --fault-every 180 $(if $(SEED),--seed $(SEED))

two-workers-loop: install  ## the two-worker takeover tests 10x in a row beside a CPU-bound process (~40 min; stack up)
	bash scripts/two_workers_loop.sh

stack-up: install
	salewatch stack up

stack-down:
	salewatch stack down

cluster-up: install  ## the local stack with a 2x2 ClickHouse cluster (then SALEWATCH_CLICKHOUSE_CLUSTER=salewatch salewatch migrate)
	salewatch stack up --clickhouse-cluster 2x2

cluster-tests: install  ## the cluster tests alone (~4 min; a 2x2 cluster of their own on free ports)
	python3 -m pytest tests/cluster

schemas:  ## regenerate the published JSON Schemas from streams/events/contract.py
	$(PYTHON) -m streams.events.schemagen
