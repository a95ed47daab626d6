"""Several optimizers (`opt_func` returning a dict, `trainer.opts`): a GAN trained by one callback that claims the
step, checkpointed and resumed bit-exactly; and the step variants (scaler, clipping, accumulation) applied to each."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (BasicTrainCB, Callback, CheckpointCB, DataLoaders, GradAccumCB, GradClipCB, MixedPrecisionCB,
                        OneCycleSchedulerCB, Trainer, set_seed)

bce = nn.functional.binary_cross_entropy_with_logits


class GAN(nn.Module):
    def __init__(self, nz=4, n=6):
        super().__init__()
        self.gen = nn.Sequential(nn.Linear(nz, 16), nn.ReLU(), nn.Linear(16, n))
        self.disc = nn.Sequential(nn.Linear(n, 16), nn.LeakyReLU(0.2), nn.Dropout(0.2), nn.Linear(16, 1))


class GANCB(Callback):
    '''Each batch: one discriminator step on real and generated rows, then one generator step (the docs' recipe)'''

    claims = ('predict', 'get_loss', 'backward', 'step', 'zero_grad')

    def __init__(self, nz=4): self.nz = nz

    def predict(self, trainer):
        self.real = trainer.batch[0]
        trainer.preds = trainer.model.gen(torch.randn(len(self.real), self.nz, device=self.real.device))

    def get_loss(self, trainer):  # the discriminator's loss; the generated rows are detached from the generator
        disc, fake = trainer.model.disc, trainer.preds
        trainer.loss = (bce(disc(self.real), torch.ones(len(fake), 1, device=fake.device)) +
                        bce(disc(fake.detach()), torch.zeros(len(fake), 1, device=fake.device)))

    def backward(self, trainer): trainer.loss.backward()

    def step(self, trainer):
        trainer.opts['disc'].step()
        trainer.opts['disc'].zero_grad()
        fake = trainer.preds
        self.gen_loss = bce(trainer.model.disc(fake), torch.ones(len(fake), 1, device=fake.device))
        self.gen_loss.backward()
        trainer.opts['gen'].step()

    def zero_grad(self, trainer):
        for opt in trainer.opts.values(): opt.zero_grad()


def gan_opts(groups, lr):
    gen, disc = groups
    return {'gen': torch.optim.Adam([gen], betas=(0.5, 0.999)), 'disc': torch.optim.Adam([disc], betas=(0.5, 0.999))}


def gan_trainer(callbacks=(), seed=0):
    set_seed(seed)
    real = torch.randn(48, 6, generator=torch.Generator().manual_seed(0)) * 0.5 + 2
    dls = DataLoaders(DataLoader(TensorDataset(real[:40]), batch_size=4, shuffle=True),
                      DataLoader(TensorDataset(real[40:]), batch_size=4))
    return Trainer(dls, None, gan_opts, GAN(), [GANCB(), OneCycleSchedulerCB(), GradClipCB(1.0), *callbacks],
                   splitter=lambda m: [m.gen.parameters(), m.disc.parameters()])


def state(trainer):
    return ([p.detach().clone() for p in trainer.model.state_dict().values()] +
            [s.clone() for opt in trainer.opts.values() for st in opt.state.values() for s in st.values()])


class StopAt(Callback):
    def __init__(self, at): self.at = at

    def after_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise KeyboardInterrupt


def test_gan_with_two_optimizers_checkpointed_and_resumed_bit_exactly(tmp_path):
    full = gan_trainer()
    full.fit(3, lr=[1e-2, 5e-3])
    assert full.opt is None and set(full.opts) == {'gen', 'disc'}
    assert set(full.OneCycleSchedulerCB.schedulers) == {'gen', 'disc'}
    peaks = {n: s.get_last_lr() for n, s in full.OneCycleSchedulerCB.schedulers.items()}
    assert peaks['gen'][0] < 1e-2 and peaks['disc'][0] < 5e-3  # each annealed from its own peak
    with pytest.raises(KeyboardInterrupt):
        gan_trainer([CheckpointCB(tmp_path, every_n_batches=3)]).fit(3, lr=[1e-2, 5e-3], callbacks=[StopAt((1, 7))])
    resumed = gan_trainer([CheckpointCB(tmp_path / "again")], seed=1)
    resumed.fit(3, lr=[1e-2, 5e-3], resume_from=tmp_path)
    a, b = state(full), state(resumed)
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    # It learned something: generated rows moved toward the real ones (mean 2; by 0.19 in these 30 steps).
    z = torch.randn(256, 4)
    with torch.no_grad(): assert resumed.model.gen(z).mean() > gan_trainer().model.gen(z).mean() + 0.1


def make_two_opt_trainer(callbacks):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=4), DataLoader(TensorDataset(x[:8], y[:8]), batch_size=4))
    opt_func = lambda groups, lr: {'body': torch.optim.SGD([groups[0]], momentum=0.9), 'head': torch.optim.Adam([groups[1]])}
    return Trainer(dls, nn.CrossEntropyLoss(), opt_func, model, [BasicTrainCB(), *callbacks],
                   splitter=lambda m: [m[0].parameters(), m[2].parameters()])


def test_scaler_clipping_and_accumulation_apply_to_each_optimizer():
    t = make_two_opt_trainer([MixedPrecisionCB(torch.float16, init_scale=2. ** 12), GradClipCB(0.05), GradAccumCB(3)])
    t.fit(2, lr=[0.05, 0.01], valid=False)
    # Plain PyTorch: one scaler for both optimizers, updated once per step; each optimizer's gradients clipped by
    # their own norm after unscaling; three batches accumulated per step (the last group of an epoch: what is left).
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opts = [torch.optim.SGD(ref[0].parameters(), lr=0.05, momentum=0.9), torch.optim.Adam(ref[2].parameters(), lr=0.01)]
    scaler = torch.amp.GradScaler('cpu', init_scale=2. ** 12)
    batches = list(t.dls.train)
    for _ in range(2):
        count = 0
        for i, (xb, yb) in enumerate(batches):
            with torch.autocast('cpu', dtype=torch.float16): loss = nn.functional.cross_entropy(ref(xb), yb)
            scaler.scale(loss).backward()
            count += 1
            if count == 3 or i == len(batches) - 1:
                for p in ref.parameters(): p.grad.div_(count)
                for opt in opts:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g['params']], 0.05)
                    scaler.step(opt)
                scaler.update()
                for opt in opts: opt.zero_grad()
                count = 0
    for a, b in zip(t.model.parameters(), ref.parameters()): assert torch.allclose(a, b, atol=1e-6), (a, b)
    assert t.MixedPrecisionCB.scaler.get_scale() == scaler.get_scale()


def test_basic_step_steps_every_optimizer():
    t = make_two_opt_trainer([])
    before = [p.detach().clone() for p in t.model.parameters()]
    t.fit(1, lr=[0.05, 0.01])
    assert t.opt is None and all(not torch.equal(a, b) for a, b in zip(before, t.model.parameters()))
    assert int(t.opts['head'].state[t.model[2].weight]['step']) == len(t.dls.train)
