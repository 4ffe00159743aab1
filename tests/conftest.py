import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault('REPRBOOK_PROGRESS', '0')
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('REPRBOOK_OFFLINE', '1')      # tests never download datasets: missing data skips with a reason
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
if not os.environ.get('REPRBOOK_DATA') and (ROOT.parent/'shared'/'data').is_dir():
    os.environ['REPRBOOK_DATA'] = str(ROOT.parent/'shared'/'data')


def torchrun(script_text, tmp_path, nproc=2, timeout=300):
    """Write `script_text` to tmp_path and launch it with `torchrun --nproc-per-node nproc` on 127.0.0.1 (gloo on CPU).
    The script gets tmp_path as its only argument."""
    import socket, subprocess, sys
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    script = tmp_path/'torchrun_script.py'
    script.write_text(script_text)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MASTER_ADDR': '127.0.0.1'}
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', str(nproc), '--master-addr', '127.0.0.1',
                        '--master-port', str(port), str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r
