# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GATEWAY_PORT ?= 8080
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser iptables test lint demo demo-down bench outage clean k8s-bins cluster-up cluster-down demo-kube demo-kube-down

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# the dashboard's browser test drives Debian's headless Chromium (~20 s to install)
browser:
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# transparent capture (`plait capture apply`) runs iptables-restore from Debian's iptables
iptables:
	test -x /usr/sbin/iptables-restore || { $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q iptables; }

setup: $(STAMP) browser iptables

test: $(STAMP) browser iptables k8s-bins
	$(BIN)/ruff check src tests examples $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadscope -m 'not slow and not solo'
	$(BIN)/pytest -q -p no:cacheprovider -m 'solo and not slow'

# lint-imports: the layers of docs/architecture.md ([tool.importlinter] in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check src tests examples $(wildcard bench)
	$(BIN)/ruff format --check src tests examples $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: $(STAMP)
	$(BIN)/plait up examples/shop --detach --gateway-port $(GATEWAY_PORT)
	@echo
	@echo "try:  curl -s 'http://127.0.0.1:$(GATEWAY_PORT)/checkout?item=book&payment=invoice'"
	@echo "stop: $(BIN)/plait down examples/shop"

demo-down: $(STAMP)
	$(BIN)/plait down examples/shop

bench: $(STAMP)
	$(BIN)/python -m bench.run

# the outage scenario of article 000 (docs/outage.md); matplotlib draws its plot
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $@

outage: $(VENV)/.bench-installed
	$(BIN)/python -m bench.outage

# A real Kubernetes control plane on loopback (tests/kubecluster.py): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, plus kubectl and helm, built from their Go
# modules on first use (testing/k8s/build.sh; cached in ~/.cache/plait/k8s/K8S-GO/).
k8s-bins:
	bash testing/k8s/build.sh

cluster-up: $(STAMP)
	@$(BIN)/python tests/kubecluster.py up

cluster-down: $(STAMP)
	@$(BIN)/python tests/kubecluster.py down

# The shop on that cluster with plait installed by Helm (tests/demokube.py; root); prints
# the gateway's NODE_IP:nodePort. A pod that does not get Ready is named, with the reason.
demo-kube: $(STAMP) iptables
	@$(BIN)/python tests/demokube.py up

demo-kube-down: $(STAMP)
	@$(BIN)/python tests/demokube.py down

clean:
	rm -rf $(VENV) build src/*.egg-info
