#!/bin/sh
# Server-side `update` hook of the CI/CD host's repositories: refuses pushes to the protected
# branch that are not fast-forward (and its deletion); anonymous pushes (git daemon, used by
# first-boot registration) may only create or update refs/heads/registration/<name>.
# Arguments (from git): <ref> <old-sha> <new-sha>
set -eu
ref="$1"
old="$2"
new="$3"
zero="0000000000000000000000000000000000000000"
protected="refs/heads/$(git config --get fleet.protectedBranch || echo main)"

if [ -n "${REMOTE_ADDR:-}" ] && [ -z "${SSH_CONNECTION:-}" ]; then
  case "$ref" in
    refs/heads/registration/*) ;;
    *) echo "refused: anonymous pushes may only write refs/heads/registration/<hostname>, not $ref" >&2; exit 1 ;;
  esac
fi

if [ "$ref" = "$protected" ]; then
  if [ "$new" = "$zero" ]; then
    echo "refused: $ref is protected and cannot be deleted" >&2
    exit 1
  fi
  if [ "$old" != "$zero" ] && ! git merge-base --is-ancestor "$old" "$new"; then
    echo "refused: non-fast-forward push to protected branch $ref; rebase on it and push again" >&2
    exit 1
  fi
fi
exit 0
