"""`reprbook-mol` end to end, as a user runs it (in subprocesses), on a CSV the test writes: fine-tune, then predict with
2D only, 3D only and auto. Broken SMILES and a molecule whose conformer fails are reported per row, never fatal; a bad
file, and a model directory written with another featuriser configuration, exit with one line on stderr."""
import json, math, os, shutil, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT/'reprbook'/'samples'/'flexmol'/'bbbp_64.csv'
CONFORMER_FAILS = 'C1#CC1'          # cyclopropyne: ETKDG cannot embed it (fails in about 0.1 s)
BROKEN = ['not a molecule', 'C1CC']  # unparsable SMILES, unclosed ring


def mol(*args, cwd, env=None, timeout=300):
    "Run `reprbook-mol args` in a subprocess, as a user would, on 1 thread."
    base = {**os.environ, 'OMP_NUM_THREADS': '1', 'REPRBOOK_PROGRESS': '0', 'OMP_WAIT_POLICY': 'PASSIVE'}
    exe = shutil.which('reprbook-mol')
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from reprbook.flexmol.cli import reprbook_mol; sys.exit(reprbook_mol())']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env={**base, **(env or {})},
                          timeout=timeout, cwd=cwd)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A user's CSV (two tasks, the second partly unlabelled, broken rows, a conformer failure) and a 2-epoch fine-tune on it."
    d = tmp_path_factory.mktemp('mol')
    env = {'REPRBOOK_CACHE': str(d/'cache')}        # a new user: no conformer cache
    df = pd.read_csv(SAMPLE).head(48)
    df['toxic'] = [float('nan') if i % 3 == 0 else i % 2 for i in range(len(df))]
    extra = pd.DataFrame({'smiles': BROKEN + ['', CONFORMER_FAILS], 'p_np': [1, 0, 1, 1], 'toxic': [0, 1, 0, None]})
    pd.concat([df, extra]).to_csv(d/'train.csv', index=False)
    r = mol('finetune', '--csv', 'train.csv', '--smiles-col', 'smiles', '--targets', 'p_np,toxic', '--task', 'classification',
            '--modality', 'auto', '--epochs', 2, '--batch-size', 16, '--out', 'model', '--quiet', cwd=d, env=env)
    assert r.returncode == 0, r.stderr
    pd.DataFrame({'smiles': ['CC(=O)Nc1ccc(O)cc1', CONFORMER_FAILS, BROKEN[0], '', 'c1ccccc1O']}).to_csv(d/'new.csv', index=False)
    return d, env, r


def test_finetune_writes_a_model_directory(run):
    d, _, r = run
    assert 'wrote model/' in r.stdout and 'valid: auc' in r.stdout, r.stdout
    for f in ('model.pt', 'config.json', 'featurizer.json', 'metrics.json', 'metrics.csv', 'rows.csv', 'best.pt', 'last.pt'):
        assert (d/'model'/f).exists(), f
    m = json.loads((d/'model'/'metrics.json').read_text())
    assert m['targets'] == ['p_np', 'toxic'] and m['rows'] == 52 and m['loaded'] == 49
    for part in ('valid', 'test'):
        assert m[part]['n'] > 0 and m[part]['tasks_scored'] + m[part]['tasks_skipped'] == 2
        assert m[part]['auc'] is None or 0 <= m[part]['auc'] <= 1 or math.isnan(m[part]['auc'])
    assert m['conformers']['embed_failed'] == 1
    assert json.loads((d/'model'/'featurizer.json').read_text())['max_spd'] == 20
    rows = pd.read_csv(d/'model'/'rows.csv', keep_default_na=False)
    assert len(rows) == 52 and rows.smiles.tolist()[-4:] == BROKEN + ['', CONFORMER_FAILS]
    broken = rows.iloc[-4:-1]
    assert (broken.used_in == '').all() and broken.note.str.contains('smiles').all()
    last = rows.iloc[-1]                              # the conformer failure is still used, with its 2D graph
    assert last.used_in in ('train', 'valid', 'test') and 'embed_failed' in last.note
    assert set(pd.read_csv(d/'model'/'metrics.csv').columns) >= {'step', 'loss'}


@pytest.mark.parametrize('modality,expected', [
    ('2d', ['2d (generated 3d)', '2d (generated 3d)', 'skipped', 'skipped', '2d (generated 3d)']),
    ('3d', ['3d (generated 2d)', 'skipped: no 3D (embed_failed)', 'skipped', 'skipped', '3d (generated 2d)']),
    ('auto', ['both', '2d (generated 3d)', 'skipped', 'skipped', 'both']),
])
def test_predict_with_each_modality(run, modality, expected):
    d, env, _ = run
    out = f'preds_{modality}.csv'
    r = mol('predict', '--model', 'model', '--csv', 'new.csv', '--smiles-col', 'smiles', '--modality', modality, '--out', out,
            '--quiet', cwd=d, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f'wrote 5 rows to {out}'), r.stdout
    p = pd.read_csv(d/out, keep_default_na=False, na_values=[''])
    assert list(p.columns[:3]) == ['smiles', 'p_np', 'toxic'] and 'status' in p.columns
    assert p.smiles.fillna('').tolist() == pd.read_csv(d/'new.csv', keep_default_na=False).smiles.tolist()   # input order
    for status, want in zip(p.status, expected): assert status.startswith(want), (status, want)
    used = ~p.status.str.startswith('skipped')
    assert p.loc[used, ['p_np', 'toxic']].apply(lambda c: c.between(0, 1)).all().all()
    assert p.loc[~used, ['p_np', 'toxic']].isna().all().all()
    if modality == 'auto': assert 'embed_failed' in p.note[1]             # the row says why 3D was generated


def test_errors_are_one_line(run, tmp_path):
    d, env, _ = run
    (tmp_path/'empty.csv').write_text('')
    (tmp_path/'sheet.xlsx').write_bytes(b'PK\x03\x04\x14\x00\x06\x00' + bytes(range(256)) * 8)
    (tmp_path/'labels.csv').write_text('smiles,p_np\nCCO,active\nCCN,inactive\n')
    import torch
    st = torch.load(d/'model'/'model.pt', weights_only=True)
    st['featurizer']['max_spd'] = 10
    (tmp_path/'other').mkdir(); torch.save(st, tmp_path/'other'/'model.pt')
    from reprbook.flexmol.finetune import pretrained_path
    pre = torch.load(pretrained_path('default'), weights_only=True)
    pre['featurizer']['h_max'] = 3
    torch.save(pre, tmp_path/'other_pretrained.pt')
    ft = ('finetune', '--targets', 'p_np', '--task', 'classification', '--out', tmp_path/'m')
    cases = [
        (ft + ('--csv', d/'train.csv', '--smiles-col', 'SMILES'), "no column 'SMILES'"),
        (ft + ('--csv', tmp_path/'empty.csv', '--smiles-col', 'smiles'), 'is empty'),
        (ft + ('--csv', tmp_path/'sheet.xlsx', '--smiles-col', 'smiles'), 'is not a CSV file'),
        (ft + ('--csv', tmp_path/'labels.csv', '--smiles-col', 'smiles'), "target column 'p_np'"),
        (ft + ('--csv', d/'train.csv', '--smiles-col', 'smiles', '--pretrained', tmp_path/'other_pretrained.pt'),
         'another featuriser configuration (h_max 3 there, 5 here)'),
        (('predict', '--model', tmp_path/'other', '--csv', d/'new.csv', '--smiles-col', 'smiles', '--out', tmp_path/'p.csv'),
         'another featuriser configuration (max_spd 10 there, 20 here)'),
        (('predict', '--model', d/'model', '--csv', d/'new.csv', '--smiles-col', 'mol', '--out', tmp_path/'p.csv'), "no column 'mol'"),
        (('pretrain', '--stage', 2, '--preset', 'ci_smoke', '--out', tmp_path/'p2'), 'pass its directory or checkpoint with --parent'),
    ]
    for args, expected in cases:
        r = mol(*args, cwd=tmp_path, env=env)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert r.stderr.count('\n') == 1 and r.stderr.startswith('reprbook-mol ') and expected in r.stderr, r.stderr
        assert 'Traceback' not in r.stderr
    assert not any((tmp_path/f).exists() for f in ('m', 'p.csv', 'p2'))   # nothing written


def test_no_arguments_prints_help_and_does_nothing(tmp_path):
    r = mol(cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith('usage: reprbook-mol') and 'finetune' in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_idle_threads_sleep_unless_the_user_says_otherwise(tmp_path):
    code = 'import os, sys, reprbook.flexmol.cli; print(os.environ["OMP_WAIT_POLICY"], "torch" in sys.modules)'
    env = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.stdout.split() == ['PASSIVE', 'False'], r.stderr         # set before torch is imported (it is not, yet)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**env, 'OMP_WAIT_POLICY': 'ACTIVE'})
    assert r.stdout.split() == ['ACTIVE', 'False'], r.stderr


def test_packaged_pretrained_model_works_offline_without_data(tmp_path):
    "`--pretrained default` reads the checkpoint shipped in the package: no data directory, no network, no cache."
    env = {'REPRBOOK_DATA': str(tmp_path/'no_data'), 'REPRBOOK_CACHE': str(tmp_path/'cache'), 'REPRBOOK_OFFLINE': '1',
           'HTTP_PROXY': 'http://127.0.0.1:9', 'HTTPS_PROXY': 'http://127.0.0.1:9', 'NO_PROXY': ''}
    pd.read_csv(SAMPLE).head(40).to_csv(tmp_path/'train.csv', index=False)
    r = mol('finetune', '--csv', 'train.csv', '--smiles-col', 'smiles', '--targets', 'p_np', '--task', 'classification',
            '--modality', '2d', '--epochs', 1, '--batch-size', 16, '--out', 'model', '--pretrained', 'default',
            '--quiet', cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path/'model'/'metrics.json').read_text())
    assert m['source']['source'] == 'default' and m['source']['stage'] == 2, m['source']
    assert not (tmp_path/'no_data').exists()
    r = mol('predict', '--model', 'model', '--csv', 'train.csv', '--smiles-col', 'smiles', '--modality', '3d',
            '--out', 'p.csv', cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    p = pd.read_csv(tmp_path/'p.csv')
    assert len(p) == 40 and p.status.str.startswith('3d (generated 2d)').sum() >= 35
