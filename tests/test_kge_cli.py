"""`reprbook-kge` end to end, as a user runs it (in a subprocess), on a user directory; malformed files give clear errors."""
import gzip, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT/'reprbook'/'samples'/'rotpro'/'toy'


def kge(*args, timeout=300):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'REPRBOOK_PROGRESS': '0', 'OMP_WAIT_POLICY': 'PASSIVE'}
    exe = shutil.which('reprbook-kge')
    cmd = [exe] if exe else [sys.executable, '-c', 'from reprbook.rotpro.cli import reprbook_kge; reprbook_kge()']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture
def user_dir(tmp_path):
    "A user's graph: the toy sample copied, with CRLF line ends and a gzipped train split, as users' files come."
    d = tmp_path/'mykg'
    d.mkdir()
    for f in TOY.iterdir():
        if f.name == 'train.txt':
            with gzip.open(d/'train.txt.gz', 'wb') as g: g.write(f.read_bytes())
        elif f.name == 'valid.txt': (d/f.name).write_bytes(f.read_bytes().replace(b'\n', b'\r\n'))
        else: shutil.copy(f, d/f.name)
    return d


def test_train_then_evaluate_a_user_directory(user_dir, tmp_path):
    run = tmp_path/'run'
    r = kge('train', '--data', user_dir, '--model', 'rotpro', '--dim', 8, '--steps', 80, '--negatives', 8, '--batch', 64,
            '--gamma', 6, '--lr', 0.01, '--seed', 1, '--out', run, '--quiet')
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary['steps'] == 80 and summary['model'] == 'rotpro'
    cfg = json.loads((run/'config.json').read_text())
    assert cfg['config']['dim'] == 8 and cfg['data']['n_entities'] == 70
    assert (run/'last.pt').exists()
    for split in ('valid', 'test'):
        r = kge('evaluate', '--run', run, '--data', user_dir, '--split', split, '--quiet')
        assert r.returncode == 0, r.stderr
        m = json.loads(r.stdout.strip().splitlines()[-1])
        n = sum(1 for l in (user_dir/f'{split}.txt').read_bytes().splitlines() if l.strip())
        assert m['n_queries'] == 2 * n and m['split'] == split
        assert 0 < m['mrr'] <= 1 and 1 <= m['mr'] <= 70 and m['hits@1'] <= m['hits@3'] <= m['hits@10']
        assert m['tie_modes']['pessimistic']['mrr'] <= m['mrr']
        assert json.loads((run/f'metrics_{split}_final.json').read_text())['mrr'] == m['mrr']


def test_training_is_reproducible_and_resumes(user_dir, tmp_path):
    args = ('--data', user_dir, '--model', 'rotate', '--dim', 8, '--steps', 40, '--negatives', 8, '--batch', 64, '--seed', 3, '--quiet')
    a, b = kge('train', *args, '--out', tmp_path/'a'), kge('train', *args, '--out', tmp_path/'b')
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ea = kge('evaluate', '--run', tmp_path/'a', '--quiet'); eb = kge('evaluate', '--run', tmp_path/'b', '--quiet')
    assert ea.returncode == 0, ea.stderr
    assert json.loads(ea.stdout.splitlines()[-1])['mrr'] == json.loads(eb.stdout.splitlines()[-1])['mrr']
    # rerunning the same command on a finished run resumes it (nothing left to do) instead of starting again
    again = kge('train', *args, '--out', tmp_path/'a')
    assert again.returncode == 0 and json.loads(again.stdout.splitlines()[-1])['steps'] == 40


@pytest.mark.parametrize('name,content,expected', [
    ('train.txt', 'c0_m1\tsameCluster\tc0_m2\nc0_m1 sameCluster c0_m3\n', 'train.txt, line 2: expected 3 tab-separated fields'),
    ('train.txt', 'c0_m1\tsameCluster\tnobody\n', "train.txt, line 1: unknown entity 'nobody'"),
    ('test.txt', 'c0_m1\tfriendOf\tc0_m2\n', "test.txt, line 1: unknown relation 'friendOf'"),
    ('valid.txt', '\n\n', 'valid.txt has no triples'),
    ('entities.dict', '0\ta\nx\tb\n', "entities.dict, line 2: the id 'x' is not an integer"),
])
def test_malformed_files_are_clear_errors(user_dir, tmp_path, name, content, expected):
    (user_dir/'train.txt.gz').unlink() if name == 'train.txt' else None
    (user_dir/name).write_text(content)
    r = kge('train', '--data', user_dir, '--steps', 5, '--dim', 4, '--out', tmp_path/'run', '--quiet')
    assert r.returncode != 0
    assert expected in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr


def test_missing_files_and_bad_arguments(tmp_path):
    (tmp_path/'kg').mkdir()
    (tmp_path/'kg'/'train.txt').write_text('a\tr\tb\n')
    r = kge('train', '--data', tmp_path/'kg', '--out', tmp_path/'run', '--quiet')
    assert r.returncode != 0 and 'has no valid.txt' in r.stderr and 'Traceback' not in r.stderr
    r = kge('train', '--data', TOY, '--model', 'bert', '--out', tmp_path/'run', '--quiet')
    assert r.returncode != 0 and "unknown model 'bert'" in r.stderr
    r = kge('evaluate', '--run', tmp_path/'nowhere', '--quiet')
    assert r.returncode != 0 and 'no config.json' in r.stderr
    r = kge('fly')
    assert r.returncode != 0 and "unknown command 'fly'" in r.stderr


def test_a_folder_of_triples_is_enough(tmp_path):
    "Without entities.dict / relations.dict, they are built from the triples (sorted names) and written beside them."
    d = tmp_path/'triples'
    d.mkdir()
    for f in ('train.txt', 'valid.txt', 'test.txt'): shutil.copy(TOY/f, d/f)
    r = kge('train', '--data', d, '--model', 'rotate', '--dim', 8, '--steps', 24, '--negatives', 8, '--batch', 64,
            '--out', tmp_path/'run', '--quiet')
    assert r.returncode == 0, r.stderr
    assert 'built entities.dict (70 entities) and relations.dict (5 relations)' in r.stderr
    names = [l.split('\t')[1] for l in (d/'entities.dict').read_text().splitlines()]
    assert names == sorted(names) and len(names) == 70
    r = kge('evaluate', '--run', tmp_path/'run', '--quiet')
    assert r.returncode == 0 and 0 < json.loads(r.stdout.splitlines()[-1])['mrr'] <= 1, r.stderr


def test_validation_is_printed_as_it_comes_and_a_run_continues(user_dir, tmp_path):
    "--eval-every N prints one line per validation during training; continue trains a finished run on to --steps."
    run = tmp_path/'run'
    # toy: 343 training triples, batch 64 -> 2 x 6 = 12 steps per epoch; 36 steps = 3 epochs = 3 validations
    r = kge('train', '--data', user_dir, '--model', 'rotpro', '--dim', 8, '--steps', 36, '--negatives', 8, '--batch', 64,
            '--eval-every', 1, '--out', run, '--quiet')
    assert r.returncode == 0, r.stderr
    evals = [l for l in r.stdout.splitlines() if l.startswith('eval:')]
    assert len(evals) == 3 and all('mrr' in l for l in evals), r.stdout
    assert json.loads(r.stdout.splitlines()[-1])['best_valid']['metric'] == 'mrr'
    assert (run/'best.pt').exists() and (run/'metrics.csv').exists()
    r = kge('continue', '--run', run, '--steps', 60, '--quiet')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])['steps'] == 60
    assert len([l for l in r.stdout.splitlines() if l.startswith('eval:')]) == 2   # epochs 4 and 5
    r = kge('continue', '--run', run, '--steps', 60, '--quiet')
    assert r.returncode != 0 and 'has trained 60 steps' in r.stderr
    r = kge('evaluate', '--run', run, '--weights', 'best', '--split', 'valid', '--quiet')
    assert r.returncode == 0, r.stderr


def test_a_diverging_run_ends_with_one_line(user_dir, tmp_path):
    r = kge('train', '--data', user_dir, '--model', 'rotate', '--dim', 8, '--steps', 20, '--lr', 1e30, '--out', tmp_path/'run',
            '--quiet')
    assert r.returncode != 0 and 'Traceback' not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and 'NaN or infinite' in lines[0] and '--lr 1e+29' in lines[0], r.stderr


def test_rotate_scale_trains_and_evaluates(user_dir, tmp_path):
    r = kge('train', '--data', user_dir, '--model', 'rotate_scale', '--dim', 8, '--steps', 24, '--negatives', 8,
            '--batch', 64, '--out', tmp_path/'run', '--quiet')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])['model'] == 'rotate_scale'
    r = kge('evaluate', '--run', tmp_path/'run', '--quiet')
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.splitlines()[-1])
    assert 0 < m['mrr'] <= 1 and m['hits@1'] <= m['hits@10']


def test_help_says_how_the_defaults_were_chosen():
    r = kge('--help')
    assert r.returncode == 0
    assert 'cli_defaults.json' in r.stdout and 'continue' in r.stdout
    from reprbook.rotpro.cli import DEFAULTS, SWEEP_FILE
    chosen = json.loads((ROOT/SWEEP_FILE).read_text())['chosen']
    assert chosen == {'lr': DEFAULTS['lr'], 'gamma': DEFAULTS['gamma']}


def test_a_run_written_before_new_options_still_resumes(user_dir, tmp_path):
    "A config.json without the newer keys (projection_init, device) resumes with their defaults; a missing GPU is one line."
    args = ('--data', user_dir, '--model', 'rotpro', '--dim', 8, '--steps', 20, '--negatives', 8, '--batch', 64, '--quiet')
    assert kge('train', *args, '--out', tmp_path/'r').returncode == 0
    f = tmp_path/'r'/'config.json'
    meta = json.loads(f.read_text())
    for k in ('projection_init', 'device'): meta['config'].pop(k)
    f.write_text(json.dumps(meta))
    again = kge('train', *args, '--out', tmp_path/'r')
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])['steps'] == 20
    import torch
    if not torch.cuda.is_available():
        gpu = kge('train', *args, '--out', tmp_path/'g', '--device', 'cuda')
        assert gpu.returncode != 0 and 'no CUDA GPU is visible' in gpu.stderr and 'Traceback' not in gpu.stderr
