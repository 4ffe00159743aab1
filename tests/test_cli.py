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
    for c in ('intl', 'rotpro', 'flexmol'): assert f'{c}:' in r.stdout


def test_help_mentions_presets():
    r = run('reprbook-reproduce', '--help')
    assert r.returncode == 0 and 'smoke' in r.stdout
