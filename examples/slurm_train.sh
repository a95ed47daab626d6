#!/bin/bash
# Train on several machines under SLURM: one torchrun launcher per node, meeting through a c10d rendezvous on the
# first node; each launcher starts one process per GPU. Stopped by SLURM (preempted: SIGTERM; or, through --signal,
# SIGUSR1 two minutes before the time limit), the training finishes its step, writes a checkpoint into $CKPT (a folder
# every node sees) and exits with code 75; this script then requeues the job, which continues from that checkpoint.
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
#SBATCH --signal=B:USR1@120
#SBATCH --output=%x-%j.out
set -euo pipefail

GPUS_PER_NODE=${GPUS_PER_NODE:-4}
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
PORT=${PORT:-29500}
CKPT=${CKPT:-$PWD/checkpoints/$SLURM_JOB_NAME}
PYTHON=${PYTHON:-python}
SCRIPT=${SCRIPT:-${SLURM_SUBMIT_DIR:-$PWD}/examples/train_distributed.py}  # sbatch runs a copy of this file

# A signal to this script is passed on to the training (srun forwards it to every task, torchrun to every process);
# torchrun reports a worker's exit code 75 as a failure (1), so the signal itself is what says "requeue".
signalled=0
on_signal() { signalled=1; kill -TERM "$step" 2>/dev/null || true; }
trap on_signal USR1 TERM
srun --ntasks-per-node 1 "$PYTHON" -m torch.distributed.run \
    --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS_PER_NODE" \
    --rdzv_backend c10d --rdzv_id "$SLURM_JOB_ID" --rdzv_endpoint "$HEAD_NODE:$PORT" \
    "$SCRIPT" --checkpoint "$CKPT" "$@" &
step=$!
status=0
while :; do  # `wait` returns early when a trapped signal arrives: wait again until the step has ended
    wait "$step" && status=0 || status=$?
    kill -0 "$step" 2>/dev/null || break
done
if [ "$signalled" = 1 ] || [ "$status" = 75 ]; then
    echo "slurm_train.sh: stopped by a signal (training exit status $status); checkpoint in $CKPT; requeueing job" \
         "$SLURM_JOB_ID" >&2
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
fi
exit "$status"
