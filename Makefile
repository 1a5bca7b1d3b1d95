# Two entry points: `make run` and `make test`. Everything else is a helper.
BUILD      ?= build
BUILD_SAN  ?= build-sanitize
ADDR       ?= 127.0.0.1:5000
ROOT       ?= ./data
JOBS       ?= $(shell nproc)
PREFIX     ?= /usr/local
BUILD_TYPE ?= RelWithDebInfo

.PHONY: all deps deps-run build run test test-unit test-sanitize clean install

all: build

# Everything the tests need (skopeo, docker-registry, cmocka, ...); deps-run only what building
# and running berth needs.
deps:
	@scripts/install-deps.sh test

deps-run:
	@scripts/install-deps.sh run

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DBERTH_TESTS=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The tests stay as they were configured: on when cmocka is there (`make test` turns them on).
CONFIGURE_SERVER = cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	-DBERTH_TESTS=$$(pkg-config --exists cmocka && echo ON || echo OFF)

# Builds only the server, quietly: the build's output is shown only if it fails.
run: deps-run
	@$(CONFIGURE_SERVER) >$(BUILD).configure.log 2>&1 || { cat $(BUILD).configure.log; exit 1; }
	@rm -f $(BUILD).configure.log
	@echo "building $(BUILD)/berth ..."
	@cmake --build $(BUILD) -j $(JOBS) --target berth >$(BUILD)/berth-build.log 2>&1 \
		|| { cat $(BUILD)/berth-build.log; exit 1; }
	@$(BUILD)/berth serve --addr $(ADDR) --root $(ROOT)

# The binary, the systemd unit, the sysusers entry and the docs under PREFIX (DESTDIR honoured);
# like `run`, it needs and builds only the server.
install: deps-run
	$(CONFIGURE_SERVER) >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target berth
	cmake --install $(BUILD) --prefix $(PREFIX)

test: build
	scripts/run-tests.sh $(BUILD) --output-on-failure -j $(JOBS) --timeout 600

test-sanitize: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DBERTH_SANITIZE=ON >/dev/null
	cmake --build $(BUILD_SAN) -j $(JOBS)
	BERTH_SANITIZE=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		scripts/run-tests.sh $(BUILD_SAN) --output-on-failure -j $(JOBS) --timeout 900

clean:
	rm -rf $(BUILD) $(BUILD_SAN)

# Benchmarks side by side with CNCF Distribution (bench/README.md). `bench` takes about
# 25 minutes and writes bench/RESULTS.md; `bench-smoke` runs every workload once, tiny.
.PHONY: bench bench-smoke
bench: build
	bench/run.sh

bench-smoke: build
	bench/run.sh --smoke

# The same on one S3 server (bench/README.md, "On S3"): berth and Distribution on a throw-away
# radosgw; `bench-s3` writes bench/RESULTS-s3.md (30 minutes or more), `bench-s3-smoke` (a minute)
# checks that every S3 workload still runs.
.PHONY: bench-s3 bench-s3-smoke
bench-s3: build
	BENCH_S3=1 bench/run.sh

bench-s3-smoke: build
	BENCH_S3=1 bench/run.sh --smoke

# Garbage collection on 100,000 blobs and 10,000 manifests: berth's (offline and online) against
# Distribution's offline garbage-collect, and manifest GET p99 while it runs (bench/README.md).
.PHONY: bench-gc
bench-gc: build
	python3 bench/gc_bench.py --out bench/RESULTS-gc.md

# libFuzzer targets (fuzz/README.md), built with clang into $(BUILD_FUZZ). `fuzz` runs each target
# for FUZZ_SECONDS; `fuzz-smoke` (the CI variant) for FUZZ_SMOKE_SECONDS and fails on any finding.
BUILD_FUZZ         ?= build-fuzz
FUZZ_SECONDS       ?= 300
FUZZ_SMOKE_SECONDS ?= 30
.PHONY: fuzz fuzz-smoke
fuzz: deps
	fuzz/run.sh $(FUZZ_SECONDS) $(BUILD_FUZZ)

fuzz-smoke: deps
	fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(BUILD_FUZZ)

# Sustained mixed push/pull/delete load through real HTTP for SOAK_SECONDS (default 300):
# no unexpected errors, no leaked descriptors, a resident set that levels off, a consistent
# store (tests/api/test_soak.py; `make test` runs a 20 s variant of it).
SOAK_SECONDS ?= 300
.PHONY: soak
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) BERTH_BIN=$(abspath $(BUILD))/berth BERTH_SRC=$(CURDIR) \
		python3 tests/api/test_soak.py
