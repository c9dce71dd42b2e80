# Two commands on a fresh machine: `make run` and `make test`. Each creates .venv and installs
# requirements.txt when it is missing or has changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format install clean bench

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m whatsappcrm_backend.devenv run

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m whatsappcrm_backend.devenv test $(PYTEST_ARGS)

# Every benchmark and drill in its quick mode (about 30-40 min on 2 cores); never part of
# `make test` or CI. Each writes its section of docs/benchmarks.md. BENCH_ARGS is passed to
# each script (e.g. BENCH_ARGS=--full); BENCH_POSTGRES=0 skips the PostgreSQL runs.
BENCH_ARGS ?=
BENCH_POSTGRES ?= 1
BENCH_PY := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python

bench: $(STAMP)
	$(BENCH_PY) bench/task_floor.py
	$(BENCH_PY) bench/recycle_stall.py
	$(BENCH_PY) bench/webhook_ack.py $(BENCH_ARGS)
	if [ "$(BENCH_POSTGRES)" = "1" ]; then $(BENCH_PY) bench/webhook_ack.py --postgres $(BENCH_ARGS); fi
	$(BENCH_PY) bench/reply_latency.py $(BENCH_ARGS)
	$(BENCH_PY) bench/throughput.py $(BENCH_ARGS)
	$(BENCH_PY) bench/throughput.py --processes 2 --runs 1 $(BENCH_ARGS)
	$(BENCH_PY) bench/isolation.py $(BENCH_ARGS)
	-$(BENCH_PY) bench/drill_redelivery.py $(BENCH_ARGS)
	-$(BENCH_PY) bench/drill_worker_kill.py $(BENCH_ARGS)
	-$(BENCH_PY) bench/drill_redis_outage.py $(BENCH_ARGS)
	-$(BENCH_PY) bench/drill_sandbox_faults.py $(BENCH_ARGS)
	-$(BENCH_PY) bench/drill_fuzz.py $(BENCH_ARGS)
	$(BENCH_PY) bench/profile_hot_path.py $(BENCH_ARGS)
	if [ "$(BENCH_POSTGRES)" = "1" ]; then $(BENCH_PY) bench/profile_hot_path.py --postgres $(BENCH_ARGS); fi
	$(BENCH_PY) bench/worker_cpu.py
	$(BENCH_PY) bench/task_mix.py
	if [ -f bench/settlement.py ]; then $(BENCH_PY) bench/settlement.py; fi
	if [ -f bench/console.py ]; then $(BENCH_PY) bench/console.py; fi
	if [ -f bench/console_results.py ]; then $(BENCH_PY) bench/console_results.py; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var
