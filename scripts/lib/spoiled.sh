# Shell functions for the scripts that run a load through several generators at once
# (scripts/shards-local, scripts/image-local) and run it again when the machine alone spoiled
# it. Sourced, not run.
#
# A load the machine alone made invalid (scripts/machine-limited reads a report: the process
# paused, its CPUs stolen or all busy) says nothing about the code. Right after a CPU-heavy
# spell this machine's hypervisor stole 0.35-0.75 cores for tens of seconds, so an attempt
# waits 10 s after the one the machine spoiled.

# Waits for every PID in the array shard_pids, the generators of one load, and empties it.
# Returns 0 when each exited 0 or 1 (a shard's own verdict is of its part only: the merge
# judges the whole), 3 when those that failed did so for the machine alone (machine-limited on
# REPORTS/shard-I, with the SLO metrics that follow counted as the machine's), 1 otherwise.
# Prints each failed shard's exit code and the last lines of LOGS/shard-I.txt.
#   wait_for_shards REPORTS LOGS [SLO_METRIC...]
wait_for_shards() {
  local reports=$1 logs=$2 failed=0 spoiled=1 i code
  shift 2
  for i in "${!shard_pids[@]}"; do
    wait "${shard_pids[$i]}" && continue
    code=$?
    [ "$code" -le 1 ] && continue
    echo "shard $i exited $code:" >&2
    tail -n 5 "$logs/shard-$i.txt" >&2
    failed=1
    scripts/machine-limited "$reports/shard-$i" "$@" > /dev/null || spoiled=0
  done
  shard_pids=()
  [ "$failed" = 0 ] && return 0
  [ "$spoiled" = 1 ] && return 3
  return 1
}

# Runs TRY ATTEMPT for ATTEMPT 1, 2, 3 until it returns 0 (the load passed); a return of 3 (the
# machine alone spoiled it) tries again 10 s later, anything else stops. Returns 0 when an
# attempt passed, 1 otherwise. TRY starts its own fresh server each time: what an earlier
# attempt left held on one would reach the next attempt's clients. TRY runs on the left of
# `||`, where bash ignores set -e: it must return on its own failures.
#   retry_spoiled TRY
retry_spoiled() {
  local try=$1 attempt result
  for attempt in 1 2 3; do
    result=0
    "$try" "$attempt" || result=$?
    [ "$result" = 0 ] && return 0
    if [ "$result" != 3 ] || [ "$attempt" = 3 ]; then return 1; fi
    echo "the machine spoiled attempt $attempt: running the load again on a fresh server in 10 s"
    sleep 10
  done
  return 1
}
