#!/usr/bin/env bash
# Run `edgekit dashboard` in a detached tmux session, type a prompt, and print the screen twice:
# while the reply streams and once it is done.
#
#   scripts/tmux_dashboard.sh [MODEL] [--device D] [--max-tokens N]
#
# Environment: PROMPT (what to type), COLS/ROWS (terminal size, 80x24), LOAD_TIMEOUT_S,
# GENERATE_TIMEOUT_S, STREAM_WAIT_S (delay before the mid-stream capture), PYTHON.
# Exit status: 0 when the reply finished and the screen shows it, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-"$here/.venv/bin/python"}
prompt=${PROMPT:-"Write a short poem about a small computer."}
cols=${COLS:-80}
rows=${ROWS:-24}
load_timeout=${LOAD_TIMEOUT_S:-180}
generate_timeout=${GENERATE_TIMEOUT_S:-180}
stream_wait=${STREAM_WAIT_S:-2}

command -v tmux >/dev/null || { echo "tmux is not installed" >&2; exit 1; }

# A private tmux server, so a user's own sessions are never touched.
socket="edgekit-dashboard-$$"
tmx() { tmux -L "$socket" "$@"; }
trap 'tmx kill-server 2>/dev/null || true' EXIT

# `edgekit dashboard` where the CLI has the command, the package entry point otherwise.
if "$python" -m edgekit dashboard --help >/dev/null 2>&1; then
    launch=("$python" -m edgekit dashboard)
else
    launch=("$python" -m edgekit.tui)
fi
printf -v cmd '%q ' "${launch[@]}" "$@"

screen() { tmx capture-pane -p -t dash; }

# Waits until the header says the model is in STATE; the header reads "<model> · <device> · <state>".
wait_for_state() {
    local state=$1 timeout=$2 waited=0
    until screen | head -n 1 | grep -q "· $state"; do
        if screen | grep -q "edgekit: error"; then
            echo "the dashboard shows an error:" >&2
            screen >&2
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
        if [ "$waited" -ge $((timeout * 2)) ]; then
            echo "timed out waiting for '$state'; the screen:" >&2
            screen >&2
            return 1
        fi
    done
}

tmx new-session -d -s dash -x "$cols" -y "$rows" "cd $(printf %q "$here") && $cmd"
wait_for_state ready "$load_timeout"
tmx send-keys -t dash -l "$prompt"
tmx send-keys -t dash Enter
sleep "$stream_wait"
echo "----- while generating -----"
screen
wait_for_state ready "$generate_timeout"
sleep 0.6  # one more metrics refresh after the reply, so the final stats are on screen
echo "----- after the reply -----"
screen
tmx send-keys -t dash C-q
