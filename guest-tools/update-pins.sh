#!/usr/bin/env bash
# Rewrites the `sha256 = "..."` pin of every policies/tools/*.toml to the digest of the
# module its `wasm = "..."` line names. Run it after changing a guest tool and building
# (`cargo build` builds the tools), then review and commit the policy changes together with
# the tool change. The build is reproducible, so CI computes the same digests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
policies="$root/policies"
for policy in "$policies"/tools/*.toml; do
    wasm="$(sed -n 's/^wasm = "\(.*\)"$/\1/p' "$policy")"
    [ -n "$wasm" ] || continue
    module="$policies/$wasm"
    if [ ! -f "$module" ]; then
        echo "update-pins: $module is missing: run \`cargo build\` first" >&2
        exit 1
    fi
    digest="$(sha256sum "$module" | cut -d' ' -f1)"
    sed -i "s/^sha256 = \".*\"$/sha256 = \"$digest\"/" "$policy"
    echo "$digest  $(basename "$policy")"
done
