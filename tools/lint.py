"""Lint the exported library with ruff (unused imports, undefined names, lines within 120 columns).

Two kinds of line are written by nbdev itself, not by us, and may run past 120 columns: the module docstring (the
notebook's one-line description) and the `__all__` list that nbdev wraps at 120 before indenting it. Their E501
reports are dropped here; everything else ruff reports fails the check. Usage: python tools/lint.py [paths...]"""
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generated_lines(path: Path) -> set[int]:
    "1-based numbers of the docstring and `__all__` lines nbdev writes at the top of an exported module."
    lines, out = path.read_text().splitlines(), set()
    in_doc = lines and lines[0].startswith('"""')
    for i, line in enumerate(lines, 1):
        if in_doc:
            out.add(i)
            if i > 1 and line.rstrip().endswith('"""') or (i == 1 and line.count('"""') == 2): in_doc = False
        if line.startswith('__all__ = ['):
            j = i
            while True:
                out.add(j)
                if lines[j - 1].rstrip().endswith(']'): break
                j += 1
    return out


def main(paths: list[str]) -> int:
    r = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--output-format', 'json', *(paths or ['reprbook'])],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode not in (0, 1): print(r.stderr, file=sys.stderr); return r.returncode
    cache, kept = {}, []
    for v in json.loads(r.stdout or '[]'):
        p = Path(v['filename'])
        if v['code'] == 'E501':
            if p not in cache: cache[p] = generated_lines(p)
            if v['location']['row'] in cache[p]: continue
        kept.append(v)
    for v in kept:
        rel = Path(v['filename']).resolve().relative_to(ROOT)
        print(f"{rel}:{v['location']['row']}:{v['location']['column']}: {v['code']} {v['message']}")
    print(f"ruff: {len(kept)} problem(s)" if kept else 'ruff: all checks passed')
    return 1 if kept else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
