"""The command-line entry points, run as a user runs them: in a subprocess."""
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env=None, cwd=None):
    e = {**os.environ, **(env or {})}
    return subprocess.run(list(args), capture_output=True, text=True, env=e, cwd=cwd or ROOT, timeout=600)


def test_info_lists_datasets_in_data_dir(tmp_path):
    (tmp_path/'kg'/'wn18rr').mkdir(parents=True)
    (tmp_path/'qm9').mkdir()
    (tmp_path/'qm9'/'qm9.npz').write_bytes(b'')
    r = run('reprbook-info', env={'REPRBOOK_DATA': str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert str(tmp_path) in r.stdout
    assert 'present: wn18rr' in r.stdout and 'present: qm9.npz' in r.stdout
    assert 'cifar10' in r.stdout and 'missing' in r.stdout
    assert 'GPU:' in r.stdout and 'torch' in r.stdout


def test_info_says_when_data_dir_is_missing(tmp_path):
    r = run('reprbook-info', env={'REPRBOOK_DATA': str(tmp_path/'nowhere')})
    assert r.returncode == 0, r.stderr
    assert 'does not exist' in r.stdout and 'REPRBOOK_DATA' in r.stdout


def test_info_sees_shared_data_when_pointed_there():
    shared = ROOT.parent/'shared'/'data'
    if not shared.is_dir():
        import pytest; pytest.skip('../shared/data is not beside this checkout')
    r = run('reprbook-info', env={'REPRBOOK_DATA': str(shared)})
    for name in ('cifar10', 'kg', 'moleculenet', 'qm9'):
        line = next(l for l in r.stdout.splitlines() if l.strip().startswith(name))
        assert 'present' in line, line


def test_reproduce_unknown_chapter_is_a_clear_error(tmp_path):
    r = run('reprbook-reproduce', 'chemistry', '--preset', 'smoke', '--out', str(tmp_path))
    assert r.returncode != 0
    assert "Unknown chapter 'chemistry'" in r.stderr and 'intl, rotpro, flexmol or all' in r.stderr


def test_reproduce_unknown_preset_is_a_clear_error(tmp_path):
    r = run('reprbook-reproduce', 'intl', '--preset', 'huge', '--out', str(tmp_path))
    assert r.returncode != 0 and "Unknown preset 'huge'" in r.stderr


def test_reproduce_list_only(tmp_path):
    r = run('reprbook-reproduce', 'all', '--list-only')
    assert r.returncode == 0, r.stderr
    for c in ('intl', 'rotpro', 'flexmol'): assert f'{c} ' in r.stdout and '--preset smoke' in r.stdout


def test_reproduce_without_arguments_runs_nothing(tmp_path):
    r = run('reprbook-reproduce', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'nothing was run' in r.stdout and 'intl' in r.stdout and 'smoke' in r.stdout
    assert list(tmp_path.iterdir()) == []          # no ./results, nothing written


def test_reproduce_gpu_preset_without_gpu_is_one_line(tmp_path):
    import torch, pytest
    if torch.cuda.is_available(): pytest.skip('a GPU is visible: --preset gpu would run')
    for chapter in ('intl', 'rotpro', 'flexmol', 'all'):
        r = run('reprbook-reproduce', chapter, '--preset', 'gpu', cwd=tmp_path)
        assert r.returncode != 0
        assert r.stderr.strip().splitlines() == [r.stderr.strip()] and 'needs a CUDA GPU' in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


DIVERGING = """
import sys, torch
from torch import nn
from reprbook import core
core.load_chapter('intl')
@core.experiment('intl', 'smoke')
def diverging(out_dir):
    torch.manual_seed(0)
    model = nn.Linear(2, 1); opt = torch.optim.SGD(model.parameters(), lr=1e3)
    x, y = torch.randn(64, 2), torch.randn(64, 1)
    step = lambda m, i: (m(x[i]) - y[i]).pow(2).mean()
    batches = lambda epoch: [torch.arange(8) + 8 * k for k in range(8)]
    core.Trainer(model, opt, step, run_dir=out_dir/'run', ckpt_every=2, progress=False).fit(batches, epochs=50)
from reprbook.cli import reprbook_reproduce
sys.exit(reprbook_reproduce())
"""


def test_reproduce_divergence_is_one_line(tmp_path):
    """A preset whose training diverges (lr 1e3 on least squares) ends with one line naming the step, the last good
    checkpoint and the fix, and a non-zero exit; the script is run the way the console script runs the command."""
    script = tmp_path/'diverge.py'; script.write_text(DIVERGING)
    r = run(sys.executable, str(script), 'intl', '--out', str(tmp_path/'out'), cwd=tmp_path)
    assert r.returncode != 0
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert 'diverged' in err and 'at step' in err and 'last.pt' in err and 'lower learning rate' in err, err
