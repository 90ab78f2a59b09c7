#!/usr/bin/env bash
# Routing-quality report: trains the reference bundles (once) and evaluates them on the held-out
# test rows (tier bundles also on the other datasets' test rows), writing JSON reports and
# cost-quality plots to benchmarks/results/quality/.
# The MiniLM bundles featurize ~14k MMLU prompts, and its cross-validation 5 × 14k: allow about
# an hour on one core.
#   benchmarks/quality.sh [DATA_DIR]      (default converters/data, shipped with the project)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-converters/data}"
OUT=benchmarks/results/quality
CACHE=benchmarks/.cache/quality
BIN=.venv/bin
mkdir -p "$OUT" "$CACHE"

evaluate() {  # bundle report format data: the bundle on the data's test rows
    local bundle=$1 report=$2 fmt=$3 data=$4
    echo "== eval $report"
    "$BIN/routeiq-bundle" eval --bundle "$CACHE/$bundle" --data "$data" --format "$fmt" \
        --plot "$OUT/$report.png" --json > "$OUT/$report.json"
    "$BIN/python" - "$OUT/$report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lo, hi = r["intervals"]["router_quality"]
line = (f"  router {r['router']['avg_quality']:.3f} @ {r['router']['avg_cost']:.4g} (90% interval "
        f"{lo:.3f}-{hi:.3f})  |  best single {r['best_single']['avg_quality']:.3f} @ "
        f"{r['best_single']['avg_cost']:.4g}  |  oracle {r['oracle']['avg_quality']:.3f}  |  "
        f"random {r['random']['avg_quality']:.3f}")
if "apgr" in r:
    a = r["apgr"]
    line += (f"  |  APGR {a['apgr']:.3f} (90% interval {a['interval'][0]:.3f}-"
             f"{a['interval'][1]:.3f}; random {a['random_apgr']:.3f})")
line += f"  |  gain {r['frontier_gain']['mean_gain']:.4f}, λ step {r['max_cost_jump']:.0%}"
below = r["below_frontier"]
line += f"  |  below the single-model frontier at {len(below)}/{len(r['curve'])} λ"
if below:
    line += f" (worst −{max(p['shortfall'] for p in below):.3f})"
print(line)
PY
}

run() {  # name format data router featurizer [train options]: train (once), evaluate in domain
    local name=$1 fmt=$2 data=$3 router=$4 feat=$5
    shift 5
    if [ ! -f "$CACHE/$name/manifest.json" ]; then
        echo "== train $name"
        "$BIN/routeiq-bundle" train --data "$data" --format "$fmt" --router "$router" \
            --featurizer "$feat" --out "$CACHE/$name" --name "$name" "$@" >/dev/null
    fi
    evaluate "$name" "$name" "$fmt" "$data"
}

ood() {  # name format data router featurizer: leave each task out (ood in docs/routers.md)
    local name=$1 fmt=$2 data=$3 router=$4 feat=$5
    echo "== out of domain: $name"
    "$BIN/routeiq-bundle" ood --data "$data" --format "$fmt" --router "$router" \
        --featurizer "$feat" --plot "$OUT/ood-$name.png" --json > "$OUT/ood-$name.json"
    "$BIN/python" - "$OUT/ood-$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
i, o, b = r["in_domain"], r["out_of_domain"], r["best_single"]
line = (f"  {len(r['folds'])} folds, {r['rows']} rows: best single {b['avg_quality']:.3f}  |  "
        f"in domain {i['avg_quality']:.3f} @ {i['avg_cost']:.4g}  |  out of domain "
        f"{o['avg_quality']:.3f} @ {o['avg_cost']:.4g}  |  mean gain {i['mean_gain']:.4f} -> "
        f"{o['mean_gain']:.4f} ({r['survives']:.0%} survives)")
if "apgr" in i:
    line += f"  |  APGR {i['apgr']:.3f} -> {o['apgr']:.3f}"
print(line)
PY
}

run llmrouter-knn-tfidf llmrouter "$DATA/llmrouter" knn tfidf
run mmlu-linear-tfidf routellm "$DATA/routellm" linear tfidf
run gsm8k-linear-tfidf routellm-gsm8k "$DATA/routellm" linear tfidf
run mmlu-knn-minilm routellm "$DATA/routellm" knn minilm
run gsm8k-knn-minilm routellm-gsm8k "$DATA/routellm" knn minilm

# More kinds: logistic (per-model probabilities), Platt-calibrated routers, and auto (the kind
# with the highest mean gain above the single models on the validation slice).
run llmrouter-logistic-tfidf llmrouter "$DATA/llmrouter" logistic tfidf
run llmrouter-knn-tfidf-platt llmrouter "$DATA/llmrouter" knn tfidf --calibration platt
run llmrouter-auto-tfidf llmrouter "$DATA/llmrouter" auto tfidf
run mmlu-logistic-tfidf routellm "$DATA/routellm" logistic tfidf
run mmlu-linear-tfidf-platt routellm "$DATA/routellm" linear tfidf --calibration platt
run mmlu-auto-tfidf routellm "$DATA/routellm" auto tfidf
run gsm8k-logistic-tfidf routellm-gsm8k "$DATA/routellm" logistic tfidf
run gsm8k-linear-tfidf-platt routellm-gsm8k "$DATA/routellm" linear tfidf --calibration platt
run gsm8k-auto-tfidf routellm-gsm8k "$DATA/routellm" auto tfidf
# Platt without task smoothing: the smoothest curves (shrinking toward each task's mean bunches
# the predicted gaps by task, so a λ step moves a whole task at once).
run llmrouter-linear-tfidf-platt-nosmooth llmrouter "$DATA/llmrouter" linear tfidf \
    --calibration platt --task-smoothing 1
run mmlu-linear-tfidf-platt-nosmooth routellm "$DATA/routellm" linear tfidf \
    --calibration platt --task-smoothing 1
run gsm8k-linear-tfidf-platt-nosmooth routellm-gsm8k "$DATA/routellm" linear tfidf \
    --calibration platt --task-smoothing 1

# The static encoder distilled from MiniLM (embeddings at TF-IDF cost).
run llmrouter-knn-static llmrouter "$DATA/llmrouter" knn static
run mmlu-knn-static routellm "$DATA/routellm" knn static
run gsm8k-linear-static routellm-gsm8k "$DATA/routellm" linear static

# The tier router (any priced models), in domain and across datasets: trained on one dataset's
# models, judged between another's (GPT-4 vs Mixtral are never seen by the LLMRouter-trained one).
run llmrouter-tier-tfidf llmrouter "$DATA/llmrouter" tier tfidf
run mmlu-tier-tfidf routellm "$DATA/routellm" tier tfidf
run gsm8k-tier-tfidf routellm-gsm8k "$DATA/routellm" tier tfidf
evaluate llmrouter-tier-tfidf llmrouter-tier-tfidf-on-mmlu routellm "$DATA/routellm"
evaluate llmrouter-tier-tfidf llmrouter-tier-tfidf-on-gsm8k routellm-gsm8k "$DATA/routellm"
evaluate mmlu-tier-tfidf mmlu-tier-tfidf-on-llmrouter llmrouter "$DATA/llmrouter"
evaluate gsm8k-tier-tfidf gsm8k-tier-tfidf-on-llmrouter llmrouter "$DATA/llmrouter"
# Out of domain: each task (LLMRouter) or group of MMLU subjects never seen in training.
ood llmrouter-knn-tfidf llmrouter "$DATA/llmrouter" knn tfidf
ood mmlu-linear-tfidf routellm "$DATA/routellm" linear tfidf
# Cross-validation: router kinds on every row (both splits), with bootstrap intervals and paired
# differences from the first kind (cv in docs/routers.md).
cv() {  # name format data featurizer kinds [train options]
    local name=$1 fmt=$2 data=$3 feat=$4 kinds=$5
    shift 5
    echo "== cross-validation: $name ($kinds $*)"
    "$BIN/routeiq-bundle" cv --data "$data" --format "$fmt" --featurizer "$feat" \
        --router "$kinds" --plot "$OUT/cv-$name.png" --json "$@" > "$OUT/cv-$name.json"
    "$BIN/python" - "$OUT/cv-$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b = r["best_single"]
print(f"  {r['rows']} rows, {r['folds']} folds: best single {b['avg_quality']:.3f} @ {b['avg_cost']:.4g}")
span = lambda iv: f"{iv[0]:.3f} to {iv[1]:.3f}"
for kind, k in r["kinds"].items():
    line = (f"  {kind:<9} {k['avg_quality']:.3f} ({span(k['quality_interval'])}) @ "
            f"{k['avg_cost']:.4g}  |  gain {k['mean_gain']:.4f}, λ step {k['max_cost_jump']:.0%}"
            f"  |  below the frontier at {len(k['below_frontier'])}/{len(k['curve'])} λ"
            + (f" (worst −{k['worst_shortfall']:.4f})" if k["below_frontier"] else ""))
    if "apgr" in k:
        line += f"  |  APGR {k['apgr']:.3f} ({span(k['apgr_interval'])})"
    print(line)
for kind, d in r["versus_first"].items():
    line = f"  {kind} minus {next(iter(r['kinds']))}: gain {d['mean_gain']:+.4f} ({span(d['gain_interval'])})"
    if "apgr" in d:
        line += f", APGR {d['apgr']:+.3f} ({span(d['apgr_interval'])})"
    print(line)
PY
}
cv llmrouter-tfidf llmrouter "$DATA/llmrouter" tfidf knn,linear,logistic,auto
cv mmlu-tfidf routellm "$DATA/routellm" tfidf linear,knn,logistic
cv gsm8k-tfidf routellm-gsm8k "$DATA/routellm" tfidf linear,knn,logistic
cv gsm8k-minilm routellm-gsm8k "$DATA/routellm" minilm knn,linear,logistic
cv mmlu-minilm routellm "$DATA/routellm" minilm knn,linear,logistic
# The smooth-knob recipe (Platt scaling, no task smoothing) for every kind.
cv llmrouter-tfidf-platt-nosmooth llmrouter "$DATA/llmrouter" tfidf knn,linear,logistic \
    --calibration platt --task-smoothing 1
cv mmlu-tfidf-platt-nosmooth routellm "$DATA/routellm" tfidf linear,knn,logistic \
    --calibration platt --task-smoothing 1
cv gsm8k-tfidf-platt-nosmooth routellm-gsm8k "$DATA/routellm" tfidf linear,knn,logistic \
    --calibration platt --task-smoothing 1
echo "reports and plots in $OUT"
