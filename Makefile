.PHONY: run test bench sam-build

# Reelay's main job locally: local AWS endpoint + simulators + the pipeline.
run:
	infra/scripts/run-local.sh $(ARGS)

# Every check and test, installing what they need first.
test:
	infra/scripts/test.sh

sam-build:
	eval "$$(infra/scripts/tools.sh env)" && sam build --config-env local
