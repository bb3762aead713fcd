#!/usr/bin/env bash
# Install cortexbench and run its main job: a real ImageNet network scored against real human IT fMRI RDMs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export CORTEXBENCH_MIRRORS=${CORTEXBENCH_MIRRORS:-$(realpath ../shared/data)}
.venv/bin/cortexbench score mobilenet_v2 kriegeskorte2008.hit-rsa "$@"
