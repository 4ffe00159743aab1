"""Exact resume for every Rot-Pro-chapter model: N steps straight equal N/2 steps, a resume from the run directory, and N/2 more."""
from importlib.resources import files
import pytest
import torch
from reprbook.rotpro.data import load_kg_dir
from reprbook.rotpro.train import KGEConfig, train_kge

TOY = files('reprbook')/'samples'/'rotpro'/'toy'
N = 40   # crosses an epoch end (the validation callback) and the learning-rate drop at N/2 = 20 is at the resume point


@pytest.fixture(scope='module')
def toy():
    return load_kg_dir(TOY)


@pytest.mark.parametrize('model', ['transe', 'rotate', 'rotpro', 'rotate_scale'])
def test_resume_is_exact(toy, model, tmp_path):
    cfg = KGEConfig(model=model, dim=8, negatives=8, batch=32, gamma=6.0, lr=1e-2, steps=N, seed=3, ckpt_every=7,
                    eval_every=1, eval_max_queries=20)
    rec_a, tr_a = train_kge(toy, cfg, tmp_path/'straight', progress=False)
    _, tr_half = train_kge(toy, cfg, tmp_path/'halves', progress=False, stop_at=N // 2)
    assert tr_half.step == N // 2
    rec_b, tr_b = train_kge(toy, cfg, tmp_path/'halves', progress=False)
    assert tr_a.step == tr_b.step == N
    sa, sb = tr_a.model.state_dict(), tr_b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa: assert torch.equal(sa[k], sb[k]), f'{model}: {k} differs after resume'
    assert [h['loss'] for h in rec_a['history']] == [h['loss'] for h in rec_b['history']]
    assert rec_a['evaluations'] and rec_a['evaluations'] == rec_b['evaluations'] and rec_a['best'] == rec_b['best']
