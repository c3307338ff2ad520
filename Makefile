.PHONY: run test bench campaign fuzz schemathesis clients-test sam-build deploy-local

# Reelay's main job locally: local AWS endpoint + simulators + the pipeline.
run:
	infra/scripts/run-local.sh $(ARGS)

# Every check and test, installing what they need first.
test:
	infra/scripts/test.sh

# Benchmarks: figures only, never pass/fail (infra/scripts/bench.sh micro|load|all).
bench:
	infra/scripts/bench.sh $(ARGS)

# The full fault-injection campaign (the CI-sized one runs inside `make test`).
campaign:
	infra/scripts/campaign.sh $(ARGS)

# Every cargo-fuzz target for a bounded time (ARGS: seconds per target).
fuzz:
	infra/scripts/fuzz.sh $(ARGS)

# Schemathesis against functions/ingest-api/openapi.yaml on the local stack.
schemathesis:
	infra/scripts/schemathesis.sh $(ARGS)

# Generated TypeScript and Python clients (from openapi.yaml) driving the local stack.
clients-test:
	infra/scripts/clients-test.sh $(ARGS)

sam-build:
	eval "$$(infra/scripts/tools.sh env)" && sam build --config-env local

# template.yaml deployed to the local AWS endpoint (sam deploy), the demo batch through the
# deployed API, the going-live steps as a test (infra/scripts/deploy-local.sh; infra/DEPLOY-LOCAL.md).
deploy-local:
	infra/scripts/deploy-local.sh $(ARGS)
