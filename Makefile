# The two commands: `make run` (the whole suite on its embedded defaults) and `make test`.
# Everything else: `make help`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APPS := services.identity services.orders services.consent services.transfer gateway
PYTEST_ARGS ?=

.PHONY: help run test fuzz invariants lint format asyncapi compliance bench migrate kafka postgres test-services stop clean

help:
	@echo "make run         start Kafka, migrate the SQLite databases, run the 4 services + gateway"
	@echo "                 and the stand-ins: payment provider, mini-program platform, SMS"
	@echo "make test        the whole test suite (starts Kafka and PostgreSQL when needed)"
	@echo "make fuzz        schemathesis against every service and the gateway (FUZZ_EXAMPLES=8)"
	@echo "make invariants  the privacy state machine, deeper than make test (INVARIANTS_EXAMPLES=20,"
	@echo "                 INVARIANTS_STEPS=30, a new random seed each run)"
	@echo "make lint        ruff (lint + format check) and mypy"
	@echo "make asyncapi    regenerate asyncapi.yaml (the events' AsyncAPI 3.0) from kit/contracts.py"
	@echo "make compliance  which policy obligations the last test run proves"
	@echo "make bench       benchmarks, side by side, printed as figures and ratios"
	@echo "make stop        stop the local Kafka and PostgreSQL"

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

kafka: $(BIN)/.installed
	bash deploy/kafka/kafka.sh start

postgres: $(BIN)/.installed
	bash deploy/postgres/pg.sh start

# What the tests need, started once (tests/conftest.py reuses them, or starts them itself).
test-services: postgres
	KAFKA_PORT=29092 KAFKA_CONTROLLER_PORT=29093 KAFKA_DATA_DIR=.run/kafka-test KAFKA_FRESH=1 \
		bash deploy/kafka/kafka.sh start

migrate: $(BIN)/.installed
	$(BIN)/python -m kit.migrations upgrade $(APPS)

run: kafka migrate
	bash deploy/service-clients.sh
	bash deploy/payment-provider.sh
	@echo
	@echo "  gateway   http://127.0.0.1:$${GATEWAY_PORT:-8000}   (public: only /healthz of its own)"
	@echo "  gw ops    http://127.0.0.1:$${GATEWAY_OPS_PORT:-8010}   (gateway /readyz /metrics /docs)"
	@echo "  identity  http://127.0.0.1:$${IDENTITY_PORT:-8001}"
	@echo "  orders    http://127.0.0.1:$${ORDERS_PORT:-8002}"
	@echo "  consent   http://127.0.0.1:$${CONSENT_PORT:-8003}"
	@echo "  transfer  http://127.0.0.1:$${TRANSFER_PORT:-8004}"
	@echo "  payment   http://127.0.0.1:$${PAYMENT_PROVIDER_PORT:-8005}   (stand-in provider ptn_standin)"
	@echo "  platform  http://127.0.0.1:$${MINI_PLATFORM_PORT:-8006}   (stand-in mini-program platform)"
	@echo "  sms       .run/data/sms/outbox.log   (stand-in SMS gateway: the codes sent)"
	@echo "  kafka     $$(bash deploy/kafka/kafka.sh bootstrap)"
	@echo "  each service: /healthz /readyz /metrics /docs     Ctrl-C stops the apps"
	@echo
	$(BIN)/honcho start -f deploy/Procfile -e .run/data/service-clients.env -d .

test: $(BIN)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

# Bounded fuzzing (tests/security/test_fuzz.py): FUZZ_EXAMPLES examples per operation,
# generation mode and caller; prints the requests each run sent.
FUZZ_EXAMPLES ?= 8
fuzz: $(BIN)/.installed
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/security/test_fuzz.py -m fuzz -q $(PYTEST_ARGS)

# The privacy invariants' state machine (tests/invariants), deeper than in `make test`:
# more and longer sequences, a new random seed each run (a failure prints its
# @reproduce_failure blob to replay it).
INVARIANTS_EXAMPLES ?= 20
INVARIANTS_STEPS ?= 30
invariants: $(BIN)/.installed
	INVARIANTS_EXAMPLES=$(INVARIANTS_EXAMPLES) INVARIANTS_STEPS=$(INVARIANTS_STEPS) \
		INVARIANTS_RANDOM=1 INVARIANTS_TIMEOUT_S=14400 \
		$(BIN)/pytest tests/invariants/test_machine.py -q $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy kit gateway services tests bench

asyncapi: $(BIN)/.installed
	$(BIN)/python -m kit.asyncapi > asyncapi.yaml

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

compliance: $(BIN)/.installed
	$(BIN)/python tests/compliance.py

# The consent view's restart at scale (bench/consent_store.py): 100k subjects by default;
# `make bench CONSENT_SUBJECTS=1000000 BENCH_TIMEOUT=1800` (or 10000000) for the goals' sizes.
CONSENT_SUBJECTS ?= 100000
BENCH_TIMEOUT ?= 1500
# wrk and nginx from Debian (the load generator and the baseline proxy); about 12 minutes.
bench: kafka postgres
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && apt-get update -q >/dev/null && apt-get install -y -q nginx-light wrk >/dev/null; } || \
		{ echo "make bench needs wrk and nginx: apt-get install nginx-light wrk" >&2; exit 1; }
	BENCH_CONSENT_SUBJECTS=$(CONSENT_SUBJECTS) timeout $(BENCH_TIMEOUT) $(BIN)/python -m bench

stop:
	-bash deploy/kafka/kafka.sh stop
	-KAFKA_PORT=29092 KAFKA_CONTROLLER_PORT=29093 KAFKA_DATA_DIR=.run/kafka-test \
		bash deploy/kafka/kafka.sh stop
	-KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 KAFKA_DATA_DIR=.run/kafka-outage \
		bash deploy/kafka/kafka.sh stop
	-bash deploy/postgres/pg.sh stop

clean: stop
	rm -rf .run $(VENV) deploy/kafka/lib *.egg-info .mypy_cache .ruff_cache .pytest_cache
