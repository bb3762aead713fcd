#!/usr/bin/env bash
# Install cortexbench and run the whole test suite (what CI runs). Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh || exit 1
export CORTEXBENCH_MIRRORS=${CORTEXBENCH_MIRRORS:-$(realpath ../shared/data)}
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
