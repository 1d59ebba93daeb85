#!/usr/bin/env bash
# Runs Tessera's fuzz targets, each for a bounded time, one after the other.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS is the time per target (default 60); TARGET defaults to every target
# (form, basic, scope, assertion). Exits non-zero if a target fails to build or
# finds a crash (a panic, a failed assertion, a sanitizer report, an input slower
# than FUZZ_TIMEOUT seconds, or memory over FUZZ_RSS_LIMIT_MB); the input that
# crashed is saved under fuzz/artifacts/TARGET/.
#
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z
# flags cargo-fuzz passes. Environment:
#   FUZZ_SANITIZER     address (default) or none, if the sanitizer runtime is missing
#   FUZZ_TIMEOUT       seconds one input may take before it counts as a hang (10)
#   FUZZ_RSS_LIMIT_MB  memory limit of a run (2048)
#   FUZZ_MAX_LEN       longest input tried, in bytes (8192: past every size limit)
#   FUZZ_JOBS          cargo build jobs (default: cargo's own)
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi
shift || true

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"
build_args=(--sanitizer "$sanitizer")
if [[ -n "${FUZZ_JOBS:-}" ]]; then
    export CARGO_BUILD_JOBS="$FUZZ_JOBS"
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "==> building ${targets[*]} (sanitizer: $sanitizer)"
for target in "${targets[@]}"; do
    cargo fuzz build "${build_args[@]}" "$target"
done

failed=()
summary=()
for target in "${targets[@]}"; do
    # New inputs go to fuzz/work/TARGET (ignored by git); the seeds in
    # fuzz/corpus/TARGET are read, never written.
    work="$root/fuzz/work/$target"
    log="$root/fuzz/work/$target.log"
    mkdir -p "$work" "$root/fuzz/artifacts/$target"
    libfuzzer_args=(
        "-max_total_time=$seconds"
        "-timeout=${FUZZ_TIMEOUT:-10}"
        "-rss_limit_mb=${FUZZ_RSS_LIMIT_MB:-2048}"
        "-max_len=${FUZZ_MAX_LEN:-8192}"
        "-print_final_stats=1"
    )
    if [[ -f "$root/fuzz/dict/$target.dict" ]]; then
        libfuzzer_args+=("-dict=$root/fuzz/dict/$target.dict")
    fi
    echo "==> fuzzing $target for ${seconds}s (log: $log)"
    status=0
    cargo fuzz run "${build_args[@]}" "$target" "$work" "$root/fuzz/corpus/$target" \
        -- "${libfuzzer_args[@]}" >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    corpus="$(find "$work" -type f | wc -l)"
    if [[ $status -ne 0 ]]; then
        failed+=("$target")
        summary+=("$target: FAILED (exit $status) after ${runs:-?} runs; see $log and fuzz/artifacts/$target/")
        tail -n 40 "$log" >&2
    else
        summary+=("$target: ok, ${runs:-?} runs in ${seconds}s (${rate:-?}/s), $corpus new corpus inputs")
    fi
done

echo "==> summary"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "==> crashes or failures in: ${failed[*]}" >&2
    exit 1
fi
