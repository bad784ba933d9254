# Two commands on a fresh machine: `make run` and `make test`. Both install what they need.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
export UV_PYTHON_DOWNLOADS := never
PY := .venv/bin/python
SOAK_MINUTES ?= 30
INFRA := JAUGE_PYTHON=$(CURDIR)/$(PY) deploy/local/infra.sh
UNIT_TESTS := shared/tests ops/tests tools/tests testkit/tests services

.PHONY: docs help deps infra-start infra-stop run cluster cluster-stop bench-partitions test test-slow browser validate-deploy bench bench-import bench-colis bench-ws bench-pages seed soak lint typecheck checks pytest pytest-unit pytest-unit-gateway pytest-unit-others pytest-system format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install uv, the Python workspace, RabbitMQ and FerretDB (skips what is there)
	deploy/local/bootstrap.sh

infra-start: deps ## start RabbitMQ and FerretDB unless JAUGE_AMQP_URL / JAUGE_MONGO_URL are set
	$(INFRA) start

infra-stop: ## stop the RabbitMQ and FerretDB that infra-start started
	$(INFRA) stop

run: deps ## the whole system; prints where to click; Ctrl-C stops what it started
	deploy/local/run.sh

cluster: deps ## three RabbitMQ nodes (deploy/local/cluster.sh), the services on all of them; Ctrl-C stops the services
	deploy/local/cluster.sh start
	JAUGE_AMQP_URL=$$(deploy/local/cluster.sh urls) JAUGE_QUEUE_TYPE=quorum \
	  JAUGE_PROGRESS_PARTITIONS=$${JAUGE_PROGRESS_PARTITIONS:-6} deploy/local/run.sh

cluster-stop: ## stop the three nodes of `make cluster`
	deploy/local/cluster.sh stop

test: infra-start browser checks pytest-system ## what CI runs

checks: ## lint, types, deploy files and the unit tests (in two halves), side by side
	$(MAKE) --no-print-directory -j5 --output-sync=target lint typecheck validate-deploy \
	  pytest-unit-gateway pytest-unit-others

browser: ## Debian's chromium for the browser tests
	$(INFRA) install-browser

test-slow: infra-start browser ## the long tests kept out of `make test` (big batches, soaks)
	$(PY) -m pytest -m slow

bench: infra-start ## the progress pipeline: broker ceiling, progress-svc, push latency, polling baseline
	$(PY) bench/pipeline_bench.py

bench-import: infra-start ## an EDI import of 2,000 files, 2 import-svc replicas
	$(PY) bench/import_bench.py --files 2000

bench-colis: infra-start ## parcel forms under 50 concurrent agents, then the pipeline's throughput
	$(PY) bench/colis_bench.py

bench-partitions: infra-start ## progress-svc with 1, 2 and 3 replicas over 6 partitions (and the single queue)
	$(PY) bench/partition_bench.py

bench-pages: infra-start ## every page's first paint and API times on a store of 10,000 parcels, 1,000 imports, 50,000 invoices
	$(PY) bench/pages_bench.py

seed: ## fill the store of JAUGE_MONGO_URL / JAUGE_DB_PREFIX with that history (jauge_tools.seed)
	$(PY) -m jauge_tools.seed

bench-ws: infra-start ## 5,000 WebSocket clients on one gateway, 5% never reading: latency, memory
	$(PY) bench/ws_bench.py

soak: infra-start ## mixed load for SOAK_MINUTES (30): imports, parcels, 500 WebSockets; nothing may grow
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES)

validate-deploy: ## offline checks of deploy/: compose schema, hadolint, kustomize+kubeconform, promtool, dashboard
	deploy/validate.sh

lint: ## ruff
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: ## mypy (strict on shared/)
	$(PY) -m mypy shared/src ops/src tools/src testkit/src services/import-svc/src services/colis-svc/src services/progress-svc/src services/gateway/src

pytest: ## the whole test suite on the real broker and store
	$(PY) -m pytest

pytest-unit: ## each package's own tests (the store for some; no service started)
	$(PY) -m pytest $(UNIT_TESTS)

# the unit tests in two halves of about the same time, for `checks`
pytest-unit-gateway:
	$(PY) -m pytest services/gateway/tests services/import-svc/tests
pytest-unit-others:
	$(PY) -m pytest shared/tests ops/tests tools/tests testkit/tests services/colis-svc/tests services/progress-svc/tests

# tests/ two files at a time: a system test mostly waits (an outage longer than a
# timeout, a browser on a slow link), so two share the cores in about two thirds of the
# time; the speed guard measures ratios and runs first, alone
pytest-system: ## tests/: the services started on the real broker and store, faults, browsers
	$(PY) -m pytest tests -m "alone and not slow"
	$(PY) -m pytest tests -m "not alone and not slow" -n 2 --dist loadfile

docs: ## regenerate docs/configuration.md and docs/asyncapi.json (tests fail when they are stale)
	$(PY) -m jauge_tools.configdoc > docs/configuration.md
	$(PY) -m jauge_shared.asyncapi > docs/asyncapi.json

format: ## rewrite the code in the house style
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean: infra-stop ## stop the infrastructure and forget local data
	rm -rf var
