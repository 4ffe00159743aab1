"""Packaging: a fresh install (not editable) exposes the package, its version, its data and its console scripts."""
import os, subprocess, sys, tomllib
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_version_importable():
    r = subprocess.run([sys.executable, '-c', 'import reprbook; print(reprbook.__version__)'], capture_output=True, text=True, cwd='/')
    assert r.returncode == 0 and r.stdout.strip(), r.stderr


def test_console_scripts_are_declared_and_exist():
    scripts = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['scripts']
    import importlib
    for name, target in scripts.items():
        mod, fn = target.split(':')
        assert callable(getattr(importlib.import_module(mod), fn)), name
        assert '-' in name and '_' not in name, f'{name}: console scripts use hyphens, as nbdev\'s do'


def test_fresh_wheel_install(tmp_path):
    """Build a wheel from the checkout, install it into an empty target folder, and use that copy (not the checkout)."""
    wheel_dir, site = tmp_path/'wheel', tmp_path/'site'
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(wheel_dir), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    wheel = next(wheel_dir.glob('reprbook-*.whl'))
    r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', str(site), str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, 'PYTHONPATH': str(site), 'REPRBOOK_DATA': str(tmp_path/'data')}
    code = 'import reprbook, reprbook.core; print(reprbook.__file__); from reprbook.cli import reprbook_info; reprbook_info()'
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith(str(site)), r.stdout     # the installed copy, not the checkout
    assert 'data directory' in r.stdout
    import zipfile
    names = zipfile.ZipFile(wheel).namelist()
    assert 'reprbook/_modidx.py' in names and 'reprbook/core.py' in names
    ep = next(n for n in names if n.endswith('entry_points.txt'))
    eps = zipfile.ZipFile(wheel).read(ep).decode()
    assert 'reprbook-info = reprbook.cli:reprbook_info' in eps and 'reprbook-reproduce' in eps
    samples = [p.relative_to(ROOT).as_posix() for p in (ROOT/'reprbook'/'samples').rglob('*') if p.is_file()] if (ROOT/'reprbook'/'samples').exists() else []
    for s in samples: assert s in names, f'package data {s} is missing from the wheel'
