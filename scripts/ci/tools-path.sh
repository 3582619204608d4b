#!/usr/bin/env bash
# On a runner: finds or builds the pinned toolchain (scripts/tools.mjs: OpenTofu and the bpg
# provider built from the Go module proxy, whose checksum database verifies every module, so
# no unverified binary download), puts it on the job's PATH and points OpenTofu at the locally
# built provider (TF_CLI_CONFIG_FILE). Built once per runner user (the cache in
# $FLEET_TOOLS_DIR, default ~/.cache/proxmox-nixos-fleet/tools); bake it into an ephemeral
# runner's image.
set -euo pipefail
: "${GITHUB_PATH:?run this in a GitHub Actions step}"
: "${GITHUB_ENV:?run this in a GitHub Actions step}"
root=$(cd "$(dirname "$0")/../.." && pwd)
manifest=$(node "$root/scripts/tools.mjs" --json)
# shellcheck disable=SC2016 # JavaScript, not shell
MANIFEST=$manifest node -e '
  const m = JSON.parse(process.env.MANIFEST);
  const path = require("path");
  const dirs = new Set(Object.entries(m.tools).filter(([n]) => n !== "node").map(([, t]) => path.dirname(t.path)));
  require("fs").appendFileSync(process.env.GITHUB_PATH, [...dirs].map((d) => d + "\n").join(""));
  require("fs").appendFileSync(process.env.GITHUB_ENV, `TF_CLI_CONFIG_FILE=${m.cliConfig}\n`);
  if (!m.tools.tofu) { console.log("::error::scripts/tools.mjs found no tofu"); process.exit(1); }'
