#!/usr/bin/env bash
# Packs what the deploy applies into the artifact directory, sealed: the saved plans hold every
# value in clear text, sensitive ones included (and so do the logs and `show -json`), and anyone
# with read access to the repository can download an artifact (#28 item 6). They go into one
# tar encrypted with age to the deploy's recipients (deploy/plan-recipients.txt: the public key
# whose identity is the production environment's PLAN_AGE_IDENTITY secret). In clear text only
# the comment (our renderer masks sensitive values on both sides) and what identifies the plan.
#   scripts/ci/seal-plans.sh <recipients file> <artifact dir> <pull request> <head commit> <base ref>
# Env: PLAN_STATUS (plan-comment's exit status, default 0) and PLAN_DESTROYS (true when the
# allow-destroy label let a stateful VM's destruction through): kept in meta.json, where the
# deploy reads which environment must approve it.
set -euo pipefail
recipients=${1:?recipients file}
out=${2:?artifact dir}
pr=${3:?pull request}
head=${4:?head commit}
base=${5:?base ref}
if ! grep -q '^age1' "$recipients" 2> /dev/null; then
  echo "seal-plans: $recipients has no age recipient (age1...): create the deploy's key with age-keygen, commit its public key there and store the key as the production environment secret PLAN_AGE_IDENTITY" >&2
  exit 2
fi
mkdir -p "$out"
PR=$pr HEAD_SHA=$head BASE=$base node -e '
  const e = process.env;
  const meta = { pr: Number(e.PR), head: e.HEAD_SHA, base: e.BASE, status: Number(e.PLAN_STATUS || 0), destroys: e.PLAN_DESTROYS === "true" };
  process.stdout.write(JSON.stringify(meta) + "\n")' > plans/meta.json
shopt -s nullglob
saved=(cdktf.out/stacks/*/plan.bin)
# show -json output stays behind: the deploy does not need it
tar -czf - "${saved[@]}" plans/stacks.sha256 plans/meta.json plans/*.log plans/*.error | age -e -R "$recipients" -o "$out/reviewed.tar.age"
cp plans/meta.json "$out/meta.json"
for f in comment.md plan-comment-full.md; do
  if [ -f "$f" ]; then cp "$f" "$out/"; fi
done
