#!/usr/bin/env bash
# Routing-quality report: trains the reference bundles (once) and evaluates them on the held-out
# test rows, writing JSON reports and cost-quality plots to benchmarks/results/quality/.
# The MiniLM bundles featurize ~14k MMLU prompts: allow about half an hour on one core.
#   benchmarks/quality.sh [DATA_DIR]      (default converters/data, shipped with the project)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-converters/data}"
OUT=benchmarks/results/quality
CACHE=benchmarks/.cache/quality
BIN=.venv/bin
mkdir -p "$OUT" "$CACHE"

run() {  # name format data router featurizer
    local name=$1 fmt=$2 data=$3 router=$4 feat=$5
    if [ ! -f "$CACHE/$name/manifest.json" ]; then
        echo "== train $name"
        "$BIN/routeiq-bundle" train --data "$data" --format "$fmt" --router "$router" \
            --featurizer "$feat" --out "$CACHE/$name" --name "$name" >/dev/null
    fi
    echo "== eval $name"
    "$BIN/routeiq-bundle" eval --bundle "$CACHE/$name" --data "$data" --format "$fmt" \
        --plot "$OUT/$name.png" --json > "$OUT/$name.json"
    "$BIN/python" - "$OUT/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
line = (f"  router {r['router']['avg_quality']:.3f} @ {r['router']['avg_cost']:.4g}  |  "
        f"best single {r['best_single']['avg_quality']:.3f} @ {r['best_single']['avg_cost']:.4g}"
        f"  |  oracle {r['oracle']['avg_quality']:.3f}  |  random {r['random']['avg_quality']:.3f}")
if "apgr" in r:
    line += f"  |  APGR {r['apgr']['apgr']:.3f} (random {r['apgr']['random_apgr']:.3f})"
print(line)
PY
}

run llmrouter-knn-tfidf llmrouter "$DATA/llmrouter" knn tfidf
run mmlu-linear-tfidf routellm "$DATA/routellm" linear tfidf
run gsm8k-linear-tfidf routellm-gsm8k "$DATA/routellm" linear tfidf
run mmlu-knn-minilm routellm "$DATA/routellm" knn minilm
run gsm8k-knn-minilm routellm-gsm8k "$DATA/routellm" knn minilm
echo "reports and plots in $OUT"
