"""`CudaGraphCB`: the training step (predict, get_loss, backward, step) captured once per fit as a CUDA graph."""
from __future__ import annotations

import contextlib

import torch

from ..callback import Callback
from .basic_train import BasicTrainCB
from ..runtime.messages import warn


class CudaGraphCB(Callback):
    '''Captures the training step once per fit as a CUDA graph and replays it for every training batch

    A small model's step is hundreds of kernel launches; a replay is one, so launch-bound fits get many times faster.
    At the first training batch it runs `warmup` steps on a side stream (as PyTorch's CUDA graph notes ask), puts the
    model and optimizer back as they were, captures predict, get_loss, backward and step into a graph with static
    input buffers, and from then on copies each batch into those buffers and replays. `trainer.preds` is the graph's
    static output (overwritten by the next batch: clone it to keep it) and `trainer.loss` a copy of the static loss.
    The capture runs inside whatever autocast is active at predict (e.g. entered by a mixed-precision callback in
    before_batch), with autocast's weight cache off as graphs need; a GradScaler step cannot be captured.

    It declines with a warning, and the fit runs eagerly (the plain steps of `BasicTrainCB`), when capture is unsafe:
    the model is not on a CUDA device; the optimizer was not built with `capturable=True` (pass
    `functools.partial(torch.optim.Adam, capturable=True)` as opt_func); a callback hooks before_backward (it would
    run after the captured step); the model has forward hooks (they run once, at capture, not at replay, e.g.
    ActivationStatsCB). A batch of another shape (the last, partial one) runs eagerly; pass drop_last=True to avoid it.
    Validation batches run eagerly. A learning rate that a scheduler changes is copied into the graph before each replay.
    '''

    claims = ('predict', 'get_loss', 'backward', 'step', 'zero_grad')

    def __init__(self, warmup: int = 3):
        self.warmup, self.eager = warmup, BasicTrainCB()
        self.graph: torch.cuda.CUDAGraph | None = None
        self.declined: list[str] | None = None
        self._replayed = False

    # ---- when capture is unsafe ----
    def unsafe_reasons(self, trainer) -> list[str]:
        """Why the step cannot be captured here (empty when it can)."""
        reasons = []
        params = list(trainer.model.parameters())
        if not params or params[0].device.type != "cuda" or not torch.cuda.is_available():
            where = params[0].device if params else "nowhere (no parameters)"
            reasons.append(f"the model is on {where}; CUDA graphs need a CUDA device (add DeviceCB('cuda'))")
        if not all(g.get("capturable", False) for g in trainer.opt.param_groups):
            reasons.append(f"the optimizer ({type(trainer.opt).__name__}) was not built with capturable=True; pass "
                           f"opt_func=functools.partial(torch.optim.Adam, capturable=True) (or AdamW, ...)")
        hooks = [getattr(m, "__self__", m) for m in trainer.plan.get("before_backward", ())]
        if hooks:
            reasons.append(f"{', '.join(type(h).__name__ for h in hooks)} hook(s) before_backward, which would run "
                           f"after the captured backward and step")
        hooked = [n or type(m).__name__ for n, m in trainer.model.named_modules()
                  if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks]
        if hooked:
            reasons.append(f"modules {hooked[:3]}{'...' if len(hooked) > 3 else ''} have hooks, which run once at "
                           f"capture, not at each replay (remove ActivationStatsCB, say)")
        batch = trainer.batch
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2 and all(isinstance(b, torch.Tensor) for b in batch)):
            reasons.append("the batch is not a tuple of tensors")
        elif len(trainer.xb) != 1 or len(trainer.yb) != 1 or trainer.loss_func is None:
            reasons.append("the step is not loss_func(model(x), y) (several inputs or targets, or loss_func=None)")
        return reasons

    def _decline(self, reasons: list[str]) -> None:
        self.declined = reasons
        warn("CudaGraphCB: not capturing the training step, because " + "; and ".join(reasons) +
             ". Training goes on eagerly.", UserWarning)

    # ---- the fit ----
    def before_fit(self, trainer):
        self.graph, self.declined, self._replayed, self._warned_shape = None, None, False, False
        self.eager.before_fit(trainer)

    def cleanup_fit(self, trainer):
        self.graph = self.static = self.static_preds = self.static_loss = None  # free the graph's memory pool

    def predict(self, trainer):
        self._replayed = False
        if trainer.training and self.declined is None:
            if self.graph is None:
                reasons = self.unsafe_reasons(trainer)
                if reasons: self._decline(reasons)
                else: self._capture(trainer)
            if self.graph is not None and self._fits(trainer.batch): return self._replay(trainer)
            if self.graph is not None:
                self._eager_after_capture(trainer)
        self.eager.predict(trainer)

    def get_loss(self, trainer):
        if not self._replayed: self.eager.get_loss(trainer)

    def backward(self, trainer):
        if not self._replayed: self.eager.backward(trainer)

    def step(self, trainer):
        if not self._replayed: self.eager.step(trainer)

    def zero_grad(self, trainer):
        # The graph's backward writes the gradients afresh at each replay, so they need no zeroing; and eager steps
        # after the capture zero them in place (the graph holds their memory).
        if not self._replayed and self.graph is None: self.eager.zero_grad(trainer)

    # ---- capture and replay ----
    def _fits(self, batch) -> bool:
        return len(batch) == len(self.static) and all(
            b.shape == s.shape and b.dtype == s.dtype for b, s in zip(batch, self.static))

    def _eager_after_capture(self, trainer) -> None:
        if not self._warned_shape:
            shapes = [tuple(b.shape) for b in trainer.batch]
            warn(f"CudaGraphCB: a batch of shapes {shapes} differs from the captured "
                 f"{[tuple(s.shape) for s in self.static]}; running it eagerly (build the training loader "
                 f"with drop_last=True to keep every batch in the graph).", UserWarning)
            self._warned_shape = True
        trainer.opt.zero_grad(set_to_none=False)  # in place: the graph keeps writing into these gradients

    def _lr_tensors(self, trainer) -> None:
        # A float lr would be frozen into the graph; a tensor one is read at each replay, and schedulers can set it.
        dev = self.static[0].device
        for g in trainer.opt.param_groups:
            if not isinstance(g["lr"], torch.Tensor): g["lr"] = torch.tensor(float(g["lr"]), device=dev)
        self._lrs = [g["lr"] for g in trainer.opt.param_groups]

    def _capture(self, trainer) -> None:
        model, opt, loss_func = trainer.model, trainer.opt, trainer.loss_func
        self.static = tuple(b.detach().clone() for b in trainer.batch)
        x, y = self.static[0], self.static[1]
        self._lr_tensors(trainer)
        saved = self._snapshot(trainer)
        autocast = torch.is_autocast_enabled("cuda")
        dtype = torch.get_autocast_dtype("cuda") if autocast else None
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):  # warm-up: lets lazy state (optimizer moments, cuDNN plans) allocate
                for _ in range(self.warmup):
                    opt.zero_grad(set_to_none=True)
                    with torch.autocast("cuda", dtype=dtype, enabled=autocast, cache_enabled=False):
                        loss = loss_func(model(x), y)
                    loss.backward()
                    opt.step()
            torch.cuda.current_stream().wait_stream(side)
            self._restore(trainer, saved)
            opt.zero_grad(set_to_none=True)  # so the graph's backward allocates the gradients in its own pool
            graph = torch.cuda.CUDAGraph()
            # thread_local: a DataLoader's pin-memory thread may call CUDA while we capture, which is harmless.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                with torch.autocast("cuda", dtype=dtype, enabled=autocast, cache_enabled=False):
                    self.static_preds = model(x)
                    self.static_loss = loss_func(self.static_preds, y)
                self.static_loss.backward()
                opt.step()
        except Exception as e:
            with contextlib.suppress(Exception): torch.cuda.synchronize()
            self._restore(trainer, saved)
            opt.zero_grad(set_to_none=True)
            self.static = None
            return self._decline([f"capture failed ({type(e).__name__}: {e})"])
        self.graph = graph

    def _replay(self, trainer) -> None:
        for s, b in zip(self.static, trainer.batch): s.copy_(b, non_blocking=True)
        for g, t in zip(trainer.opt.param_groups, self._lrs):
            if g["lr"] is not t:  # a scheduler set a new float: copy it into the tensor the graph reads
                t.fill_(g["lr"])
                g["lr"] = t
        self.graph.replay()  # type: ignore[union-attr]  # replayed only once captured
        trainer.preds = self.static_preds
        trainer.loss = self.static_loss.detach().clone()  # the next replay overwrites the static one
        self._replayed = True

    def _snapshot(self, trainer) -> dict:
        """Copies of what warm-up changes: parameters, buffers, and optimizer state that exists already."""
        with torch.no_grad():
            tensors = [*trainer.model.parameters(), *trainer.model.buffers()]
            state = {id(p): {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
                     for p, s in trainer.opt.state.items()}
            return {"tensors": [(t, t.detach().clone()) for t in tensors], "state": state}

    def _restore(self, trainer, saved: dict) -> None:
        # In place, so the graph (captured after this) and the optimizer keep pointing at the same memory.
        with torch.no_grad():
            for t, copy in saved["tensors"]: t.copy_(copy)
            for p, s in trainer.opt.state.items():
                before = saved["state"].get(id(p), {})
                for k, v in s.items():
                    if k in before:
                        if isinstance(v, torch.Tensor): v.copy_(before[k])
                        else: s[k] = before[k]
                    elif isinstance(v, torch.Tensor): v.zero_()  # created by warm-up: its initial value is zero
