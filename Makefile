.PHONY: run test test-fast
# Runs the product on its embedded defaults (installs what it needs).
run:
	scripts/run.sh
# Installs what the tests need (Python deps, PostgreSQL, Redis, the pinned Go-built tools)
# and runs the whole suite: on PostgreSQL, then the embedded subset on SQLite.
test:
	scripts/test.sh
# A quick loop: skips slow tests and the real clusters.
test-fast:
	PYTEST_MARK="not slow and not cluster" scripts/test.sh
