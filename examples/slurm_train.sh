#!/bin/bash
# Train on several machines under SLURM: one torchrun launcher per node, meeting through a c10d rendezvous on the
# first node; each launcher starts one process per GPU. Requeued (preempted, or out of time with --requeue), the job
# continues from the newest checkpoint in $CKPT (a folder every node sees).
#
#   sbatch --nodes 2 examples/slurm_train.sh --epochs 10            # extra arguments go to train_distributed.py
#   GPUS_PER_NODE=8 sbatch --nodes 4 --gpus-per-node 8 examples/slurm_train.sh
#
#SBATCH --job-name=aisaac
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --output=%x-%j.out
set -euo pipefail

GPUS_PER_NODE=${GPUS_PER_NODE:-4}
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
PORT=${PORT:-29500}
CKPT=${CKPT:-$PWD/checkpoints/$SLURM_JOB_NAME}
PYTHON=${PYTHON:-python}
SCRIPT=${SCRIPT:-${SLURM_SUBMIT_DIR:-$PWD}/examples/train_distributed.py}  # sbatch runs a copy of this file

srun --ntasks-per-node 1 "$PYTHON" -m torch.distributed.run \
    --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS_PER_NODE" \
    --rdzv_backend c10d --rdzv_id "$SLURM_JOB_ID" --rdzv_endpoint "$HEAD_NODE:$PORT" \
    "$SCRIPT" --checkpoint "$CKPT" "$@"
