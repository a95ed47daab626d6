"""BasicTrainCB gives exactly what a hand-written PyTorch loop gives."""
import copy
from functools import partial

import torch
from torch import nn

from AIsaac.all import BasicTrainCB, Trainer


def hand_loop(model, dls, opt_func, lr, epochs):
    opt = opt_func(model.parameters(), lr)
    loss_func = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for xb, yb in dls.train:
            loss = loss_func(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        with torch.no_grad():
            for xb, yb in dls.valid: model(xb)
    return model


def test_matches_hand_written_loop_sgd_and_adam(tiny_dls, tiny_model):
    for opt_func in (partial(torch.optim.SGD, momentum=0.9), torch.optim.Adam):
        ours, ref = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
        Trainer(tiny_dls, nn.CrossEntropyLoss(), opt_func, ours, callbacks=[BasicTrainCB()]).fit(3, lr=0.05)
        hand_loop(ref, tiny_dls, opt_func, 0.05, 3)
        for a, b in zip(ours.parameters(), ref.parameters()): assert torch.equal(a, b)
        assert not torch.equal(ours.weight, tiny_model.weight)


def test_sets_preds_and_loss(tiny_dls, tiny_model):
    tr = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, callbacks=[BasicTrainCB()])
    tr.fit(1, train=False)
    xb, yb = tr.batch
    torch.testing.assert_close(tr.preds, tiny_model(xb))
    torch.testing.assert_close(tr.loss, nn.functional.cross_entropy(tiny_model(xb), yb))
