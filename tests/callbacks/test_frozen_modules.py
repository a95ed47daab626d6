"""FrozenModulesCB: a distillation fit with a frozen teacher (Dropout and BatchNorm, so its mode shows) equals the same
distillation written by hand; the teacher stays unchanged, out of the optimizer and of checkpoints unless asked."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (BasicTrainCB, Callback, CheckpointCB, DataLoaders, DeviceCB, FrozenModulesCB, MetricsCB,
                        Trainer, read_checkpoint)


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return DataLoaders(DataLoader(TensorDataset(x[:64], y[:64]), batch_size=8),
                       DataLoader(TensorDataset(x[64:], y[64:]), batch_size=8))


def student():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))


def teacher():
    torch.manual_seed(1)
    t = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
    t.train()  # as a freshly built module is: FrozenModulesCB must put it in eval mode
    with torch.no_grad(): t[1].running_mean.uniform_(-0.5, 0.5)
    return t


def distill_loss(preds, teacher_logits, y, temp=2.):
    soft = F.softmax(teacher_logits / temp, -1)
    return 0.5 * F.cross_entropy(preds, y) + 0.5 * F.cross_entropy(preds / temp, soft)


class DistillCB(Callback):
    '''The loss of a student against the labels and the frozen teacher's softened outputs'''

    claims = ('get_loss',)

    def get_loss(self, trainer):
        trainer.loss = distill_loss(trainer.preds, trainer.teacher(*trainer.xb), trainer.yb[0])


def test_a_distillation_fit_equals_the_hand_loop():
    tch = teacher()
    before = {k: v.clone() for k, v in tch.state_dict().items()}
    flags = [p.requires_grad for p in tch.parameters()]
    t = Trainer(data(), None, torch.optim.SGD, student(),
                [DeviceCB('cpu'), BasicTrainCB(), MetricsCB(), FrozenModulesCB(teacher=tch), DistillCB()])
    t.fit(2, lr=0.1)
    # By hand: the teacher in eval mode without gradients, the student trained on the same loss.
    model, ref = student(), teacher()
    ref.eval().requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        model.train()
        for x, y in data().train:
            distill_loss(model(x), ref(x), y).backward()
            opt.step(); opt.zero_grad()
    for p, q in zip(t.model.parameters(), model.parameters()): torch.testing.assert_close(p, q, rtol=0, atol=0)
    # The teacher unchanged (BatchNorm's running stats too), its mode and flags back, not on the trainer any more.
    for k, v in tch.state_dict().items(): assert torch.equal(v, before[k]), k
    assert tch.training and [p.requires_grad for p in tch.parameters()] == flags and not hasattr(t, "teacher")
    assert not {id(p) for p in tch.parameters()} & {id(p) for g in t.opt.param_groups for p in g["params"]}


def test_the_module_is_on_the_model_s_device_in_eval_mode_during_the_fit():
    seen, moved, seen_to = [], [], []
    tch = teacher()
    tch.to = lambda *a, **k: moved.append(a) or seen_to.append(k) or nn.Module.to(tch, *a, **k)

    class Look(Callback):
        def before_batch(self, trainer):
            m = trainer.teacher
            seen.append((trainer.training, m.training, m[1].training, any(p.requires_grad for p in m.parameters())))

    t = Trainer(data(), nn.CrossEntropyLoss(), torch.optim.SGD, student(),
                [DeviceCB('cpu'), BasicTrainCB(), FrozenModulesCB(teacher=tch), Look()])
    t.fit(1)
    assert moved == [()] and seen_to == [{"device": torch.device("cpu"), "dtype": None}]
    assert {s[0] for s in seen} == {True, False} and not any(s[1] or s[2] or s[3] for s in seen)


def test_a_submodule_of_the_model_stays_in_eval_mode_across_model_train():
    model = nn.Sequential(teacher(), nn.Linear(2, 2))  # a frozen encoder inside the model, a head trained on it
    modes = []

    class Look(Callback):
        def before_batch(self, trainer):
            if trainer.training: modes.append((trainer.model.training, trainer.encoder.training))

    t = Trainer(data(), nn.CrossEntropyLoss(), torch.optim.SGD, model,
                [BasicTrainCB(), FrozenModulesCB(encoder=model[0]), Look()])
    encoder = {k: v.clone() for k, v in model[0].state_dict().items()}
    t.fit(2, lr=0.1)
    assert modes and all(m == (True, False) for m in modes)
    for k, v in model[0].state_dict().items(): assert torch.equal(v, encoder[k]), k  # not trained, stats kept


def test_dtype_casts_the_module_for_the_fit():
    dtypes = []

    class Look(Callback):
        def before_batch(self, trainer): dtypes.append(trainer.vae[0].weight.dtype)

    tch = teacher()
    Trainer(data(), nn.CrossEntropyLoss(), torch.optim.SGD, student(),
            [BasicTrainCB(), FrozenModulesCB(vae=tch, dtype=torch.bfloat16), Look()]).fit(1)
    assert set(dtypes) == {torch.bfloat16} and tch[0].weight.dtype == torch.bfloat16


@pytest.mark.parametrize("save", [False, True])
def test_checkpoints_leave_the_modules_out_unless_asked(tmp_path, save):
    tch = teacher()
    t = Trainer(data(), None, torch.optim.SGD, student(),
                [BasicTrainCB(), MetricsCB(), FrozenModulesCB(teacher=tch, save=save), DistillCB()])
    t.fit(1, callbacks=[CheckpointCB(tmp_path)])
    ckpt = read_checkpoint(tmp_path)
    state = ckpt["callbacks"]["FrozenModulesCB"]
    assert set(state) == ({"teacher"} if save else set())
    assert not any(k.startswith(("0.weight", "1.running")) and v.shape[0] == 16 for k, v in ckpt["model"].items())
    if save:
        fresh = teacher()
        with torch.no_grad(): fresh[0].weight.zero_()
        FrozenModulesCB(teacher=fresh, save=True).load_state_dict(state)
        for k, v in fresh.state_dict().items(): assert torch.equal(v, tch.state_dict()[k])


def test_refusals():
    with pytest.raises(TypeError, match="teacher=teacher_model"): FrozenModulesCB()
    with pytest.raises(TypeError, match="nn.Module"): FrozenModulesCB(teacher=3)
    with pytest.raises(ValueError, match="vae"): FrozenModulesCB(teacher=teacher(), save=["vae"])
    t = Trainer(data(), nn.CrossEntropyLoss(), torch.optim.SGD, student(), [BasicTrainCB(), FrozenModulesCB(opt=teacher())])
    with pytest.raises(Exception, match="trainer.opt is already"): t.fit(1)
