"""Give every public method and property of the library an API entry: after the cell that defines an exported class,
insert one `show_doc(Class.member)` cell per public member that has none yet.

    python tools/add_api_docs.py                    # every notebook in nbs/
    python tools/add_api_docs.py nbs/00_core.ipynb  # only these notebooks
    python tools/add_api_docs.py --check            # change nothing; list what is missing, exit 1 if anything is
    python tools/add_api_docs.py --prune            # also remove one-line `show_doc` cells whose member is gone, or
                                                    # that repeat what nbdev documents by itself (`@patch` methods)

What it reads: the exported cells (`#| export`, `#| exports`) of each notebook, parsed with `ast` (nothing is imported
or executed, so it takes well under a second for the whole book). A class counts when its name is public and it is
defined at the top level of an exported cell, or inside a top-level `if`/`try` block there (nbdev does not document
those classes by itself, so the class gets a `show_doc(Class)` cell too). Its public members are the methods,
properties, class and static methods written in its body (names not starting with `_`; property setters are the
property's; torch's printing hook `extra_repr` is left out). A public function that grows a class with fastcore's
`@patch` (`def name(self: Class, ...)`) needs no cell: nbdev documents it by itself as `Class.name`, right after its
cell in the notebook that defines it, and an explicit `show_doc` cell would document it twice.

Idempotent: a member with a `show_doc(Class.member)` call anywhere in its notebook is skipped, so running it again
changes nothing; new cells go right after the defining cell (after any `show_doc` cells already there), in the order
the members are written. Notebooks are rewritten only when something changed, in nbdev's JSON layout (sorted keys,
indent 1); run `nbdev-clean` afterwards as after any edit. Cells it inserts carry no outputs.
"""
from __future__ import annotations

import argparse, ast, json, re, secrets, sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
_DIRECTIVE_RE = re.compile(r'^\s*#\|\s*([\w-]+)', re.M)
_SHOWDOC_RE = re.compile(r'^\s*show_doc\(\s*([\w.]+)\s*[,)]', re.M)
EXPORT_DIRECTIVES = {'export', 'exports'}
SKIP_MEMBERS = {'extra_repr'}          # torch's hook for printing a module: not API a reader calls


def _src(cell) -> str: return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']


def _directives(src: str) -> set:
    out = set()
    for line in src.splitlines():
        m = re.match(r'^\s*#\|\s*([\w-]+)', line)
        if m: out.add(m.group(1))
        elif line.strip() and not line.strip().startswith('#'): break
    return out


def _parse(src: str):
    "The cell's module AST, or None (IPython magics and shell lines are blanked first)."
    lines = ['' if re.match(r'^\s*[%!]', l) else l for l in src.splitlines()]
    try: return ast.parse('\n'.join(lines))
    except SyntaxError: return None


def _deco_name(d) -> str:
    d = d.func if isinstance(d, ast.Call) else d
    return d.attr if isinstance(d, ast.Attribute) else getattr(d, 'id', '')


def _public(name: str) -> bool: return not name.startswith('_')


def _members(cls: ast.ClassDef) -> list[str]:
    "Public methods and properties written in the class body, in order (a property's setter is the property)."
    out = []
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name) and node.name not in SKIP_MEMBERS:
            if any(isinstance(d, ast.Attribute) and d.attr in ('setter', 'deleter') for d in node.decorator_list): continue
            if node.name not in out: out.append(node.name)
    return out


def _patch_targets(fn: ast.FunctionDef) -> list[str]:
    "The classes a `@patch` / `@patch_to(C)` function grows."
    names = {_deco_name(d) for d in fn.decorator_list}
    if 'patch_to' in names:
        for d in fn.decorator_list:
            if isinstance(d, ast.Call) and _deco_name(d) == 'patch_to' and d.args:
                a = d.args[0]
                elts = a.elts if isinstance(a, (ast.Tuple, ast.List)) else [a]
                return [e.id for e in elts if isinstance(e, ast.Name)]
    if 'patch' not in names: return []
    args = fn.args.posonlyargs + fn.args.args
    if not args or args[0].annotation is None: return []
    a = args[0].annotation
    elts = a.elts if isinstance(a, (ast.Tuple, ast.List)) else [a]
    return [e.id for e in elts if isinstance(e, ast.Name)]


@dataclass
class Wanted:
    "The `show_doc` targets one exported cell defines, in order."
    cell_index: int
    targets: list = field(default_factory=list)


def patched_members(cells: list) -> set:
    "`Class.name` of every public `@patch` function in an exported cell (nbdev documents those by itself)."
    out = set()
    for c in cells:
        if c.get('cell_type') != 'code': continue
        src = _src(c)
        d = _directives(src)
        if not d & EXPORT_DIRECTIVES or 'hide' in d: continue
        tree = _parse(src)
        for node in (tree.body if tree else []):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name):
                out |= {f'{cls}.{node.name}' for cls in _patch_targets(node)}
    return out


def wanted_docs(cells: list) -> list[Wanted]:
    "For each exported cell: the `Class.member` names (and nested classes) it should be followed by."
    out = []
    for i, c in enumerate(cells):
        if c.get('cell_type') != 'code': continue
        src = _src(c)
        d = _directives(src)
        if not d & EXPORT_DIRECTIVES or 'hide' in d: continue
        tree = _parse(src)
        if tree is None: continue
        targets = []
        def add_class(cls: ast.ClassDef, nested: bool):
            if not _public(cls.name): return
            if nested: targets.append(cls.name)                    # nbdev does not document it by itself
            targets.extend(f'{cls.name}.{m}' for m in _members(cls))
        for node in tree.body:
            if isinstance(node, ast.ClassDef): add_class(node, False)
            elif isinstance(node, (ast.If, ast.Try)):
                blocks = [node.body, node.orelse] + ([h.body for h in node.handlers] + [node.finalbody] if isinstance(node, ast.Try) else [])
                for b in blocks:
                    for sub in b:
                        if isinstance(sub, ast.ClassDef): add_class(sub, True)
        if targets: out.append(Wanted(i, list(dict.fromkeys(targets))))
    return out


def _new_cell(target: str) -> dict:
    return {'cell_type': 'code', 'execution_count': None, 'id': secrets.token_hex(4), 'metadata': {}, 'outputs': [],
            'source': [f'show_doc({target})']}


def shown(cells: list) -> set:
    "Every name a `show_doc(...)` cell of the notebook documents."
    return {m.group(1) for c in cells if c.get('cell_type') == 'code' for m in _SHOWDOC_RE.finditer(_src(c))}


def update_notebook(path: Path, check: bool = False, prune: bool = False) -> tuple[list[str], list[str]]:
    "Insert the missing cells (unless `check`); return ([added targets], [pruned targets])."
    text = path.read_text()
    nb = json.loads(text)
    cells = nb.get('cells', [])
    have = shown(cells)
    added, pruned = [], []
    wanted = wanted_docs(cells)
    all_wanted = {t for w in wanted for t in w.targets}
    for w in reversed(wanted):                                      # from the end, so indices stay valid
        missing = [t for t in w.targets if t not in have]
        if not missing: continue
        added = missing + added
        if check: continue
        at = w.cell_index + 1
        while at < len(cells) and cells[at].get('cell_type') == 'code' and _SHOWDOC_RE.match(_src(cells[at]).strip()) \
                and len(_src(cells[at]).strip().splitlines()) == 1:
            at += 1                                                  # after the show_doc cells already there
        cells[at:at] = [_new_cell(t) for t in missing]
    if prune:
        # a one-line `show_doc(Class.member)` cell whose class this notebook defines but whose member is gone, or one
        # for a `@patch` method, which nbdev documents by itself (the cell would make a second entry)
        classes = {t.split('.')[0] for t in all_wanted if '.' in t}
        patched = patched_members(cells)
        keep = []
        for c in cells:
            s = _src(c).strip()
            m = _SHOWDOC_RE.match(s) if c.get('cell_type') == 'code' and len(s.splitlines()) == 1 else None
            if m and '.' in m.group(1) and (m.group(1) in patched or
                                            (m.group(1).split('.')[0] in classes and m.group(1) not in all_wanted)):
                pruned.append(m.group(1))
                if check: keep.append(c)
            else: keep.append(c)
        cells[:] = keep
    if (added or pruned) and not check:
        nb['cells'] = cells
        path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + '\n')
    return added, pruned


def notebooks(paths: list[str]) -> list[Path]:
    if paths: return [Path(p).resolve() for p in paths]
    return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('notebooks', nargs='*', help='notebooks to update (default: every notebook in nbs/)')
    ap.add_argument('--check', action='store_true', help='change nothing: list the missing entries, exit 1 if any')
    ap.add_argument('--prune', action='store_true', help="also remove one-line show_doc cells for members that are gone")
    a = ap.parse_args(argv)
    total = 0
    for p in notebooks(a.notebooks):
        added, pruned = update_notebook(p, check=a.check, prune=a.prune)
        rel = p.relative_to(ROOT) if p.is_relative_to(ROOT) else p
        if added: print(f'{rel}: {"missing" if a.check else "added"} {len(added)}: {", ".join(added)}')
        if pruned: print(f'{rel}: {"stale" if a.check else "removed"} {len(pruned)}: {", ".join(pruned)}')
        total += len(added) + len(pruned)
    if not total: print('every public method and property has its show_doc cell')
    return 1 if a.check and total else 0


if __name__ == '__main__':
    sys.exit(main())
