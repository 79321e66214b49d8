#!/usr/bin/env bash
# Worker bootstrap on a TPU VM host or a GKE pod: install mixlaws, then run one `mixlaws` command.
#
#   bootstrap.sh PACKAGE MIXLAWS_ARGS...   install PACKAGE (a pip requirement; "" = use the mixlaws on
#                                          PATH), then exec `mixlaws MIXLAWS_ARGS...` in the foreground
#   bootstrap.sh --stop                    ask this host's worker to stop: it checkpoints its run
#
# The launcher passes this whole file as `bash -c FILE bootstrap PACKAGE ARGS...`, every argument
# quoted, so nothing it passes is ever parsed as shell code.
set -euo pipefail

pidfile="${TMPDIR:-/tmp}/mixlaws-worker.pid"

stop_worker() {
  local old
  old="$(cat "$pidfile" 2>/dev/null || true)"
  if [[ -n "$old" ]] && kill -0 "$old" 2>/dev/null; then
    kill -INT "$old"
    while kill -0 "$old" 2>/dev/null; do sleep 1; done
  fi
}

if [[ "${1:-}" == "--stop" ]]; then
  stop_worker
  exit 0
fi

package="$1"
shift
if [[ -n "$package" ]]; then
  # TPU VM images ship an older Python than mixlaws needs; uv brings a matching one.
  venv="${MIXLAWS_VENV:-$HOME/.mixlaws-venv}"
  python3 -m pip install --quiet --user --upgrade uv
  uv="$(python3 -m site --user-base)/bin/uv"
  [[ -x "$venv/bin/python" ]] || "$uv" venv --quiet --python 3.11 "$venv"
  "$uv" pip install --quiet --python "$venv/bin/python" "$package"
  mixlaws="$venv/bin/mixlaws"
else
  mixlaws="$(command -v mixlaws)"
fi

# A worker left on this host by an earlier launch holds its TPU chips: stop it first (it checkpoints,
# and the new worker resumes its run), so a relaunch never runs two workers on one host.
stop_worker
echo "$$" >"$pidfile"
exec "$mixlaws" "$@"
