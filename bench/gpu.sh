#!/usr/bin/env bash
# GPU checks and benchmarks in one short run (a few minutes on one GPU); writes bench/results/gpu.json.
#   bench/gpu.sh            # from the repository root, on a machine with a CUDA device
#   PYTHON=.venv/bin/python bench/gpu.sh
# 1. the gpu-marked tests (AMP bf16/fp16 training, fp16 serving);
# 2. a two-epoch torchrun build of the tiny config on the GPU(s) (nccl), served back by the embedder;
# 3. training images/s per GPU and embedder throughput at batch 256 (bench/gpu.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}"
GPUS="${GPUS:-$("$PY" -c 'import torch; print(torch.cuda.device_count())')}"
if [ "$GPUS" -lt 1 ]; then
  echo "bench/gpu.sh: no CUDA device" >&2
  exit 2
fi
test -d vitrine/v1 || "$PY" scripts/gen_protos.py
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "== gpu tests"
"$PY" -m pytest -m gpu tests/training/test_gpu.py -q -p no:cacheprovider

echo "== torchrun build of the tiny config on $GPUS GPU(s)"
"$PY" -c "from training.data.synthetic import write_synthetic_catalog as w; w('$WORK/catalog', 420, seed=0)"
"$PY" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" -m training.build_default \
  --data "$WORK/catalog" --config training/configs/tiny.json \
  --out "$WORK/bundle" --work "$WORK/work" --cache "$WORK/cache"
"$PY" -c "
from services.common.config import EmbedderConfig
from services.embedder.encoder import EnsembleEncoder
enc = EnsembleEncoder.load(EmbedderConfig(device='cuda', bundle='$WORK/bundle'))
vecs = enc.encode_texts([enc.prepare_text('a red dress', enc.member_names)])
print('served', enc.member_names, 'on', enc.device, enc.precision, {m: v.shape for m, v in vecs[0].items()})
"

echo "== bench gpu"
"$PY" -m bench.gpu
