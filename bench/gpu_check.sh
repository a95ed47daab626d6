#!/usr/bin/env bash
# The GPU checks for issue 4, in one call on a lent GPU machine (no network; it finishes in about 3-5 minutes):
# the CudaGraphCB/TensorLoader/ProfileCB tests on CUDA, a profile of the default callbacks on CUDA, and gpu_bench.py.
#   bash bench/gpu_check.sh            # from the repository root; logs go to $OUT (else bench/results)
# Carry bench/data (the four Fashion-MNIST .gz files, else synthetic data is used) and bench/.gpu_deps (fastcore,
# tqdm, pytest as pure-Python wheels, made by: pip install --target bench/.gpu_deps --no-deps fastcore tqdm pytest
# pluggy iniconfig packaging pygments tomli exceptiongroup), used only when the machine lacks them.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-$root/bench/results}
mkdir -p "$out"
py=${PYTHON:-python3}
{
  "$py" -c 'import torch; print(torch.__version__, torch.cuda.is_available())'
  "$py" -c 'import sys, torch; print(sys.version.split()[0], torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
  date -u
} 2>&1 | tee "$out/env.txt"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
if ! "$py" -c 'import fastcore, tqdm, pytest, numpy' 2>/dev/null; then
  echo "using the carried bench/.gpu_deps for what is missing" | tee -a "$out/env.txt"
  export PYTHONPATH="$PYTHONPATH:$root/bench/.gpu_deps"
fi
export MPLBACKEND=Agg

echo "== tests on CUDA" | tee "$out/gpu_tests.log"
timeout 180 "$py" -m pytest -q -p no:cacheprovider tests/callbacks/test_cuda_graph.py tests/callbacks/test_profile.py \
  tests/test_per_batch_syncs.py 2>&1 | tee -a "$out/gpu_tests.log"

echo "== profile of CoreCBs on CUDA (1 epoch, 10,000 images)" | tee "$out/gpu_profile.log"
timeout 120 "$py" - <<'PY' 2>&1 | tee -a "$out/gpu_profile.log"
import sys; sys.path.insert(0, "bench")
import torch
from torch import nn
from common import fashion_mnist
from AIsaac.all import *
(xt, yt), (xv, yv), source = fashion_mnist("bench/data", 10000, 2000)
print(source)
dls = DataLoaders(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xt, yt), 64, shuffle=True, pin_memory=True),
                  torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), 128, pin_memory=True))
t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, get_model_conv(), [CoreCBs(Accuracy=Accuracy())])
t.ProgressCB.bars = False
t.profile(1)
PY

data=bench/data; [ -f "$data/train-images-idx3-ubyte.gz" ] || data=none
echo "== gpu_bench (data: $data)" | tee "$out/gpu_bench.log"
timeout 300 "$py" -W ignore bench/gpu_bench.py --data "$data" ${GPU_BENCH_ARGS:-} 2>&1 | tee -a "$out/gpu_bench.log"
echo "== checkpoint stall from GPU memory (background save, pinned staging; 50M parameters with Adam)" | tee "$out/gpu_checkpoint_stall.log"
timeout 300 "$py" -W ignore bench/checkpoint_stall_bench.py --device cuda --log "$out/gpu_checkpoint_stall.log" 2>&1 | tail -3
echo "== done; logs in $out"
