import torch
from torch import nn

from talkgen_core.train.state import EMA, Progress, has_checkpoint, load_checkpoint, save_checkpoint


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_checkpoint_round_trip_restores_weights_optimiser_and_progress(tmp_path):
    model = _model(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = model(torch.randn(5, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    progress = Progress(stage="stage1", step={"vae": 10, "stage1": 3}, seconds={"vae": 1.5}, budget_s={"vae": 2.0})
    assert not has_checkpoint(tmp_path)
    save_checkpoint(tmp_path, {"net": model}, {"net": opt}, progress, {"note": 1})
    assert has_checkpoint(tmp_path)

    other = _model(1)
    other_opt = torch.optim.AdamW(other.parameters(), lr=1e-2)
    restored, extra = load_checkpoint(tmp_path, {"net": other}, {"net": other_opt})
    assert restored == progress and extra == {"note": 1}
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    # Same moments: one more identical step keeps the two models identical.
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (other, other_opt)):
        loss = m(x).pow(2).mean()
        o.zero_grad()
        loss.backward()
        o.step()
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)


def test_ema_warms_up_then_averages():
    model = _model(0)
    ema = EMA(model, decay=0.99)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)  # first update: decay (1 + 1) / (10 + 1) = 0.18, mostly the new weights
    first = next(iter(ema.module.parameters()))
    live = next(iter(model.parameters()))
    assert torch.allclose(first, live - 2.0 / 11.0, atol=1e-6)
    assert not any(p.requires_grad for p in ema.module.parameters())
