import pytest
import torch
import torchvision
from torch import nn

from AIsaac.all import body_head_splitter, get_model_timm, no_weight_decay
from AIsaac.models.splitters import layer_index, norm_params, param_groups


def ids(params): return {id(p) for p in params}


@pytest.mark.parametrize("make, head", [
    (lambda: get_model_timm('resnet18', in_chans=1, num_classes=10), lambda m: m.fc),
    (lambda: torchvision.models.resnet18(num_classes=10), lambda m: m.fc),
    (lambda: torchvision.models.mobilenet_v3_small(num_classes=10), lambda m: m.classifier),
    (lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), lambda m: m[2]),
])
def test_body_head_finds_the_classifier(make, head):
    model = make()
    body, top = body_head_splitter(model)
    assert ids(top) == ids(head(model).parameters())
    assert ids(body) | ids(top) == ids(model.parameters()) and not ids(body) & ids(top)


def test_body_head_says_what_to_do_when_there_is_no_head():
    with pytest.raises(ValueError, match="Write a splitter"): body_head_splitter(nn.Linear(3, 2))


def test_no_weight_decay_puts_biases_and_norm_weights_apart_keeping_the_groups():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    groups = param_groups(model, no_weight_decay(lambda m: [m[:2].parameters(), m[4].parameters()]))
    assert [ids(g['params']) for g in groups] == [
        ids([model[0].weight]), ids([model[0].bias, model[1].weight, model[1].bias]),
        ids([model[4].weight]), ids([model[4].bias])]
    assert ['weight_decay' in g for g in groups] == [False, True, False, True]
    assert all(g['weight_decay'] == 0. for g in groups if 'weight_decay' in g)
    assert layer_index(groups) == [0, 0, 1, 1]  # still two groups for lr=slice(...) and freeze()
    assert ids(norm_params(model)) == ids(model[1].parameters())


def test_no_weight_decay_in_adamw_matches_plain_pytorch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    ref = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    ref.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(param_groups(model, no_weight_decay()), lr=0.1, weight_decay=0.5)
    decay = [ref[0].weight, ref[2].weight]
    rest = [p for p in ref.parameters() if all(p is not d for d in decay)]
    ref_opt = torch.optim.AdamW([{'params': decay}, {'params': rest, 'weight_decay': 0.}], lr=0.1, weight_decay=0.5)
    x = torch.randn(16, 4)
    for m, o in ((model, opt), (ref, ref_opt)):
        for _ in range(3):
            m(x).pow(2).mean().backward()
            o.step()
            o.zero_grad()
    for a, b in zip(model.parameters(), ref.parameters()): assert torch.equal(a, b)


def test_param_groups_check_the_split():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="groups 0 and 1"): param_groups(model, lambda m: [m.parameters(), m[1].parameters()])
    with pytest.raises(ValueError, match="left out"): param_groups(model, lambda m: [m[0].parameters()])
    with pytest.raises(TypeError, match="list of parameter lists"): param_groups(model, lambda m: m)
