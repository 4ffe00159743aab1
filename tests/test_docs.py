"""The documentation site: build it offline with `tools/build_docs.py`, serve it on 127.0.0.1 and load its pages in
headless Chromium (Debian's `chromium`, driven through the Chrome DevTools protocol over a websocket).

Each test names one class of bug and, when it fails, lists every offender page by page with the notebook to fix:
pages that do not load cleanly (console errors, failed requests, KaTeX errors, untypeset math, broken images), raw
math in the text, Markdown tables left as text, links to missing pages or anchors, public names without an API entry,
words written for the authors rather than the reader, layout (code that scrolls at 1280 px, cut equations, copy
buttons, previous/next links, paper links, chapter cards, alt text), figure captions, the phone-width menu, the
contents marking the current section, plain-text search snippets, and noisy stored outputs. Screenshots of every page,
the home page, each chapter and a phone-width page go to `artifacts/docs/` (git-ignored) for a person to look at.
"""
import base64, functools, html, http.server, json, os, re, shutil, subprocess, sys, tempfile, threading, time, urllib.parse, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import build_docs  # noqa: E402

ARTIFACTS = ROOT/'artifacts'/'docs'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--hide-scrollbars', '--window-size=1280,900', '--remote-debugging-port=0']


def _chromium():
    exe = next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(n)), None)
    if exe is None:
        msg = 'headless Chromium is needed for the docs test: install it with `apt-get install chromium` (.ci/run does)'
        if os.environ.get('CI'): pytest.fail(msg)
        pytest.skip(msg)
    return exe


class Browser:
    "A headless Chromium with one page, driven through the DevTools protocol (websocket-client)."
    def __init__(self, exe):
        import websocket
        self.profile = tempfile.mkdtemp(prefix='reprbook-chromium-')
        self.proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f'--user-data-dir={self.profile}', 'about:blank'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, t0 = Path(self.profile)/'DevToolsActivePort', time.time()
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.time() - t0 > 30:
                self.close(); raise RuntimeError('Chromium did not start (no DevToolsActivePort)')
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = []
        for _ in range(100):
            targets = json.load(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=10))
            pages = [t for t in targets if t.get('type') == 'page']
            if pages: break
            time.sleep(0.1)
        if not pages: self.close(); raise RuntimeError('Chromium opened no page to drive')
        self.ws = websocket.create_connection(pages[0]['webSocketDebuggerUrl'], timeout=60, suppress_origin=True)
        self.next_id, self.events = 0, []
        for m in ('Page.enable', 'Runtime.enable', 'Log.enable', 'Network.enable'): self.send(m)
        self.send('Emulation.setDeviceMetricsOverride', width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def send(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({'id': self.next_id, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == self.next_id:
                if 'error' in msg: raise RuntimeError(f'{method}: {msg["error"]}')
                return msg.get('result', {})
            self.events.append(msg)

    def wait_event(self, name, timeout=60):
        t0 = time.time()
        for i, e in enumerate(self.events):
            if e.get('method') == name: return self.events.pop(i)
        while time.time() - t0 < timeout:
            msg = json.loads(self.ws.recv())
            if msg.get('method') == name: return msg
            self.events.append(msg)
        raise TimeoutError(name)

    def goto(self, url):
        self.events.clear()
        self.send('Page.navigate', url=url)
        self.wait_event('Page.loadEventFired')
        self.eval('new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))')   # after DOMContentLoaded work

    def eval(self, expr):
        r = self.send('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'{expr[:80]}: {r["exceptionDetails"]}')
        return r['result'].get('value')

    def problems(self):
        "Console errors, uncaught exceptions and failed requests since the last navigation."
        out = []
        self.send('Runtime.evaluate', expression='0')                   # flush pending events
        for e in self.events:
            m, p = e.get('method'), e.get('params', {})
            if m == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'):
                out.append('console.error: ' + ' '.join(str(a.get('value', a.get('description'))) for a in p.get('args', [])))
            elif m == 'Runtime.exceptionThrown':
                out.append('exception: ' + json.dumps(p.get('exceptionDetails', {}))[:500])
            elif m == 'Log.entryAdded' and p.get('entry', {}).get('level') == 'error':
                out.append(f'log: {p["entry"].get("text")} {p["entry"].get("url", "")}')
            elif m == 'Network.loadingFailed' and not p.get('canceled'):
                out.append(f'request failed: {p.get("errorText")}')
            elif m == 'Network.responseReceived' and p.get('response', {}).get('status', 200) >= 400:
                out.append(f'HTTP {p["response"]["status"]}: {p["response"]["url"]}')
        return out

    def screenshot(self, path, clip=None):
        params = {'format': 'png', 'captureBeyondViewport': clip is not None}
        if clip: params['clip'] = {**clip, 'scale': 1}
        data = self.send('Page.captureScreenshot', **params)['data']
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self):
        try: self.ws.close()
        except Exception: pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try: self.proc.wait(10)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def _git_status():
    return subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all'], cwd=ROOT, capture_output=True, text=True).stdout


# Files nbdev-docs itself may rewrite (nbdev.yml, _modidx.py, sidebar.yml) and the offline build's own outputs
MAY_TOUCH = ('nbs/sidebar.yml', 'nbs/nbdev.yml', 'nbs/_quarto.yml', 'nbs/_', 'reprbook/_modidx.py', 'README.md', '_proc', '_docs',
             '.cache', 'site_libs', 'search.json', 'package', 'node_modules')


def _assert_git_clean_after(before, t_start):
    after = _git_status()
    if os.environ.get('CI'):                      # a fresh clone nobody else edits: nothing may change at all
        assert after == before, f'the docs build changed files that git sees:\n{after}'
        return
    # a shared working tree: others edit files meanwhile, so only look at what this build could have written
    new = [l[3:] for l in after.splitlines() if l not in before.splitlines()]
    # (_modidx.py and README.md are left out here: other people's `nbdev-export` rewrites them all the time)
    touched = [f for f in new if f.startswith(MAY_TOUCH) and not f.startswith(('reprbook/_modidx.py', 'README.md'))
               and (ROOT/f).exists() and (ROOT/f).stat().st_mtime >= t_start]
    assert not touched, f'the docs build changed files that git sees: {touched}'
    for d in ('_proc', '.cache/docs-npm', '.cache/docs-build', '_docs'):
        assert subprocess.run(['git', 'check-ignore', '-q', f'{d}/page.html'], cwd=ROOT).returncode == 0, f'{d}/ is not git-ignored'


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    exe = _chromium()
    before, t_start = _git_status(), time.time()
    out = tmp_path_factory.mktemp('site')/'_docs'
    info = build_docs.build(out, keep_going=True)      # a notebook nbdev cannot process fails its own test below
    SOURCES.update(info['sources'])
    # the build leaves git as it was (nbdev's _proc/ and the KaTeX copy in .cache/ are git-ignored)
    _assert_git_clean_after(before, t_start)
    handler = functools.partial(_QuietHandler, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True); thread.start()
    browser = Browser(exe)
    try: yield {'info': info, 'out': out, 'url': f'http://127.0.0.1:{httpd.server_address[1]}/', 'browser': browser}
    finally:
        browser.close(); httpd.shutdown(); httpd.server_close(); thread.join(10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


# What each page must satisfy, evaluated in the page after it loaded and its scripts ran (window 1280 x 900).
CHECK_JS = r"""
(() => {
  const main = document.querySelector('main');
  const textOf = (drop) => { const c = main.cloneNode(true); c.querySelectorAll(drop).forEach(e => e.remove()); return c.textContent; };
  // prose: no code, no typeset math (KaTeX keeps the TeX source in its MathML annotation)
  const prose = textOf('pre, code, script, style, .katex, .math, .code-copy');
  // what a reader sees outside source code: prose and printed outputs (a Markdown table left as text shows here)
  const shown = textOf('div.sourceCode, :not(pre) > code, script, style, .katex, .math, .code-copy');
  const codeIn = [...main.querySelectorAll('.cell-code pre')].map(p => p.textContent).join('\n');
  const imgs = [...document.images];
  const wide = [];
  for (const pre of main.querySelectorAll('div.sourceCode pre, .cell-output pre')) {
    const longest = Math.max(...pre.textContent.split('\n').map(l => l.replace(/\t/g, '    ').length));
    if (longest <= 120 && pre.scrollWidth > pre.clientWidth + 1)
      wide.push(`${longest} columns scroll: ${pre.textContent.split('\n').find(l => l.length === longest).slice(0, 80)}`);
  }
  const mathStyle = [...main.querySelectorAll('.math.display, div.math')].map(e => getComputedStyle(e).overflowX)
                      .filter(o => o !== 'auto' && o !== 'scroll');
  return {
    title: document.title,
    h1: (document.querySelector('h1.title') || {}).textContent,
    math: document.querySelectorAll('main .math').length,
    typeset: document.querySelectorAll('main .math .katex').length,
    katex_errors: [...document.querySelectorAll('.katex-error')].map(e => e.title || e.textContent).slice(0, 5),
    prose: prose, shown: shown, code_in: codeIn,
    images: imgs.length,
    broken_images: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src').slice(0, 120)),
    no_alt: [...main.querySelectorAll('img')].filter(i => !(i.getAttribute('alt') || '').trim()).map(i => i.getAttribute('src').slice(0, 120)),
    wide_code: wide, math_cut: mathStyle.length,
    code_blocks: main.querySelectorAll('div.sourceCode').length, copy_buttons: main.querySelectorAll('div.sourceCode > .code-copy').length,
    page_nav: [...main.querySelectorAll('.page-nav a')].map(a => a.getAttribute('href')),
    chapter_links: [...main.querySelectorAll('.chapter-links a')].map(a => a.getAttribute('href')),
    cards: [...main.querySelectorAll('.chapter-card')].map(c => [...c.querySelectorAll('a')].map(a => a.getAttribute('href'))),
    sidebar: [...document.querySelectorAll('#sidebar a:not([href^="#"])')].map(a => a.getAttribute('href')),
    sections: [...document.querySelectorAll('#sidebar .sidebar-section-title')].map(e => e.textContent),
    search: !!document.getElementById('search-input'),
    katex_css: [...document.styleSheets].some(s => (s.href || '').includes('site_libs/katex/katex.min.css')),
  };
})()
"""

# ---------------------------------------------------------------------------------------------------------------
# What the checks look for in the text. Each one names a class of bug; offenders are listed page by page.
# ---------------------------------------------------------------------------------------------------------------
# Raw math: Pandoc's inline rule (opening `$` before a non-space, closing `$` after a non-space, no digit after it),
# `$$`, `\(`, `\[`, `\begin{` left in the prose instead of being typeset.
RAW_MATH = [re.compile(r'\$(?=[^\s$])[^$\n]{0,200}?[^\s\\$]\$(?!\d)|\$[^\s$]\$(?!\d)'), re.compile(r'\$\$'),
            re.compile(r'\\\(|\\\[|\\begin\{')]
# A Markdown table that was printed or written but not rendered: its `|---|---|` separator row shows as text.
TABLE_SEP = re.compile(r'(?m)^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*\|[ \t]*:?-{3,}|\|[ \t]*:?-{3,}:?[ \t]*\|')
# Words written for the team rather than for a reader (the reader has the paper, the official code and this repository).
INTERNAL_WORDS = {
    'spec': re.compile(r'\bspec(?:s|ification)?\b(?!\s*=)', re.I),
    '§': re.compile(r'§'),                         # unless it cites the paper's own section (`_cites_paper`)
    'session': re.compile(r'\bsessions?\b', re.I),
    'the team': re.compile(r"\b(?:the|our) team\b|\bteam's\b", re.I),
    'internal file': re.compile(r'\bHELPERS\.md\b|\barchitecture\.md\b|\b(?:intl|rotpro|flexmol)\.md\b|shared/(?:specs|design)\b|'
                                r'\bissues show\b', re.I),
    'check number': re.compile(r'\b(?:spec )?(?:check|test) (?:#|no\. ?)?\d+\b(?! ?(?:steps?|epochs?|seeds?|runs?|molecules|%))', re.I),
    "spec's source tag": re.compile(r'\[(?:UNVERIFIED|MEAS)\b[^\]]*\]'),
    'absolute path': re.compile(r'(?<![\w.])/(?:work|home|root|tmp|Users)/[\w.-]+'),
    'who/when': re.compile(r'\b(?:we|I) (?:added|wrote|changed) (?:it |this )?(?:on|at|yesterday|today)\b|\bhelper [A-Z]', re.I),
}
# in source code only what no code needs: the section sign, internal file names, a comment citing the spec
INTERNAL_IN_CODE = {'§': INTERNAL_WORDS['§'], 'internal file': INTERNAL_WORDS['internal file'],
                    'spec in a comment': re.compile(r'#[^\n]*\bspecs?\b', re.I)}


def _cites_paper(text, m) -> bool:
    "A `§` that cites a section of the paper (\"the paper's §3\", \"§1 and Table 1 of the paper\") is what a reader needs."
    near = text[max(0, m.start() - 60):m.end() + 60]
    return bool(re.search(r'\bpaper|\barticle|\bits §', near, re.I)) and not re.search(r'\bspec', near, re.I)


def _snip(text, m, n=50):
    return ' '.join(text[max(0, m.start() - n):m.end() + n].split())


@pytest.fixture(scope='module')
def pages(site):
    "Every page loaded once at 1280 x 900: {out_file: CHECK_JS result}, with a screenshot of each."
    b, out = site['browser'], {}
    for out_file in site['info']['pages']:
        b.goto(site['url'] + out_file)
        r = b.eval(CHECK_JS)
        r['problems'] = b.problems()
        b.screenshot(ARTIFACTS/f'{Path(out_file).stem.replace(".", "_")}.png')
        out[out_file] = r
    return out


SOURCES = {}                              # page -> notebook, filled in by the `site` fixture


def _report(offenders: dict, what: str) -> str:
    "One line per page, the offending words or snippets after it; the pages' notebooks are named so they can be fixed."
    src = {**{build_docs.output_file(rel, {}): rel for _, files in build_docs.sidebar_sections() for rel in files}, **SOURCES}
    lines = [f'{what} on {len(offenders)} page(s):']
    for page, items in sorted(offenders.items()):
        lines.append(f'  {page} (nbs/{src.get(page, "?")}): {len(items)}')
        lines += [f'      {i}' for i in items[:12]] + ([f'      ... and {len(items) - 12} more'] if len(items) > 12 else [])
    return '\n'.join(lines)


def _chapter_pages():
    "One page per chapter whose notebooks exist (the first in its section), the home page and core."
    pages = {'home': 'index.ipynb'}
    for title, files in build_docs.sidebar_sections():
        if title: pages[title] = files[0]
    assert (build_docs.NBS/'00_core.ipynb').exists()
    pages['core'] = '00_core.ipynb'
    return pages


def test_nbdev_processes_every_notebook(site):
    "nbdev's docs processing (what `nbdev-docs` runs) succeeds on every notebook: it executes imports, exported cells and show_doc."
    assert not site['info']['failed'], ('nbdev could not process these notebooks (the build left them out; `nbdev-docs` '
                                        f'fails on them; nbdev executes every cell holding an import): {site["info"]["failed"]}')


def test_every_page_loads_with_math_and_images(site, pages):
    "No console errors or failed requests, every math element typeset by the local KaTeX, every image loaded."
    outs = site['info']['pages']
    assert 'index.html' in outs and 'core.html' in outs, outs
    bad = {}
    for page, r in pages.items():
        items = [*r['problems']]
        if not (r['search'] and r['katex_css']): items.append('no search box or no KaTeX stylesheet')
        if r['math'] != r['typeset']: items.append(f'{r["math"] - r["typeset"]} math elements not typeset')
        items += [f'KaTeX error: {e}' for e in r['katex_errors']]
        items += [f'image did not load: {i}' for i in r['broken_images']]
        if items: bad[page] = items
    assert not bad, _report(bad, 'pages that do not load cleanly')
    home = pages['index.html']
    # the sidebar lists every page, grouped by the chapters that exist, with Foundation first
    assert home['sections'][0] == 'Foundation'
    assert [t for t, _ in build_docs.sidebar_sections() if t] == home['sections']
    assert len(home['sidebar']) == len(outs)
    for title, rel in _chapter_pages().items():
        assert build_docs.output_file(rel, {}) in pages, f'no page for the {title} chapter ({rel})'
    assert sum(r['typeset'] for r in pages.values()) > 0


def test_no_raw_math(pages):
    "Math left as TeX in the text: `$...$` (Pandoc's rule), `$$`, `\\(`, `\\[` or `\\begin{` outside code."
    bad = {p: [_snip(r['prose'], m) for rx in RAW_MATH for m in rx.finditer(r['prose'])] for p, r in pages.items()}
    bad = {p: v for p, v in bad.items() if v}
    assert not bad, _report(bad, 'raw math outside code')


def test_no_markdown_table_left_as_text(pages):
    "A Markdown table written or printed (e.g. by `core.markdown_table`) must be rendered: no `|---|` row in the text."
    bad = {p: [_snip(r['shown'], m, 80) for m in TABLE_SEP.finditer(r['shown'])] for p, r in pages.items()}
    bad = {p: v for p, v in bad.items() if v}
    assert not bad, _report(bad, 'Markdown tables shown as text')


def test_no_internal_words(pages):
    """The book is read by someone with the paper, the official code and this repository only: no mention of an
    internal spec, its section or check numbers, sessions, the team, internal files or build-machine paths."""
    bad = {}
    for p, r in pages.items():
        items = [f'"{name}": {_snip(r["prose"], m)}' for name, rx in INTERNAL_WORDS.items() for m in rx.finditer(r['prose'])
                 if not (name == '§' and _cites_paper(r['prose'], m))]
        items += [f'"{name}" (code): {_snip(r["code_in"], m)}' for name, rx in INTERNAL_IN_CODE.items()
                  for m in rx.finditer(r['code_in']) if not (name == '§' and _cites_paper(r['code_in'], m))]
        if items: bad[p] = items
    assert not bad, _report(bad, 'internal words')


def _ids(out_dir):
    return {p.relative_to(out_dir).as_posix(): set(re.findall(r'\bid="([^"]+)"', p.read_text())) for p in out_dir.rglob('*.html')}


def test_links_and_anchors_resolve(site):
    "Every link between pages reaches a page, and every `#anchor` it names exists there (nbdev links methods too)."
    out = site['out']
    ids, bad = _ids(out), {}
    for page in ids:
        body = (out/page).read_text().split('<main', 1)[1]
        for href in re.findall(r'<a\b[^>]*?\bhref="([^"]*)"', body):
            href = html.unescape(href)
            if re.match(r'^[a-z][a-z0-9+.-]*:', href): continue
            target, _, frag = href.partition('#')
            target = os.path.normpath(os.path.join(os.path.dirname(page), target)) if target else page
            if (out/target).is_file() and not target.endswith('.html'): continue
            if target not in ids: bad.setdefault(page, []).append(f'{href}: no such page')
            elif frag and urllib.parse.unquote(frag) not in ids[target]: bad.setdefault(page, []).append(f'{href}: no such anchor')
    assert not bad, _report(bad, 'links to pages or anchors that do not exist')


def test_nbdev_links_point_inside_the_site(site):
    "Backticked names link through _modidx.py to nbdev's absolute URLs; offline they point at this site's anchors."
    core = (site['out']/'core.html').read_text()
    assert 'core.html#save_checkpoint' in core or 'href="#save_checkpoint"' in core
    assert 'id="save_checkpoint"' in core
    assert 'reprbook.github.io' not in re.sub(r'<link[^>]*>', '', core.split('<main', 1)[1])
    assert 'show_doc(' not in core and '#| export' not in core and 'nbdev_export' not in core
    search = json.loads((site['out']/'search.json').read_text())
    assert {'objectID', 'href', 'title', 'section', 'text'} <= set(search[0])


SKIP_MEMBERS = {'extra_repr'}            # torch's printing hook (tools/add_api_docs.py leaves it out too)


def public_api(lib='reprbook'):
    """{qualified name: module} for every public function and class of the library, and every public method and
    property of those classes (written in the class or added to it with fastcore's `@patch`)."""
    import dataclasses, importlib, inspect, pkgutil, warnings
    pkg = importlib.import_module(lib)
    out = {}
    for m in pkgutil.walk_packages(pkg.__path__, lib + '.'):
        if m.name.split('.')[-1].startswith('_') or '.samples' in m.name: continue
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try: mod = importlib.import_module(m.name)
            except ImportError: continue                        # an optional extra that is not installed
        names = set(getattr(mod, '__all__', [])) | {n for n, o in vars(mod).items() if not n.startswith('_') and
                                                    (inspect.isclass(o) or inspect.isfunction(o)) and getattr(o, '__module__', None) == mod.__name__}
        for n in sorted(names):
            o = getattr(mod, n, None)
            if o is None or getattr(o, '__module__', None) != mod.__name__ or n.startswith('_'): continue
            if not (inspect.isclass(o) or inspect.isfunction(o)): continue
            out[n] = mod.__name__
            if not inspect.isclass(o): continue
            fields = {f.name for f in dataclasses.fields(o)} if dataclasses.is_dataclass(o) else set()
            for k, v in vars(o).items():
                if k.startswith('_') or k in fields or k in SKIP_MEMBERS: continue
                f = v.fget if isinstance(v, property) else getattr(v, '__func__', getattr(v, 'func', v))
                if not (isinstance(v, (property, classmethod, staticmethod)) or inspect.isfunction(v) or
                        type(v).__name__ == 'cached_property'): continue
                out[f'{n}.{k}'] = getattr(f, '__module__', None) or mod.__name__
    return out


def test_every_public_name_has_an_api_entry(site):
    """Every public function, class, method and property has one `show_doc` heading on the page of the module that
    defines it (`tools/add_api_docs.py` inserts the missing `show_doc(Class.member)` cells)."""
    from importlib import import_module
    syms = import_module('reprbook._modidx').d['syms']
    where = {full[len(m) + 1:]: url.split('#')[0] for m, names in syms.items() for full, (url, _) in names.items()}
    # show_doc headings: <h3 id="..." class="doc-entry">Name</h3> (a section heading may have taken the plain id)
    heads = {p.relative_to(site['out']).as_posix(): {m.group(1): html.unescape(re.sub(r'<[^>]+>', '', m.group(2))).strip()
                                                      for m in re.finditer(r'<h\d\b[^>]*\bid="([^"]+)"[^>]*class="[^"]*\bdoc-entry\b[^>]*>(.*?)</h\d>',
                                                                           p.read_text(), re.S)}
             for p in site['out'].rglob('*.html')}
    api = public_api()
    assert len(api) > 50, len(api)
    bad = {}
    for name, mod in sorted(api.items()):
        page = where.get(name)
        entries = [(p, i) for p, hs in heads.items() for i, text in hs.items() if text == name and (page is None or p == page)]
        if not entries: bad.setdefault(page or mod, []).append(name)
        elif len(entries) > 1:                                    # nbdev and an explicit show_doc cell both wrote one
            bad.setdefault(page or mod, []).append(f'{name} (documented twice: run `python tools/add_api_docs.py --prune`)')
    assert not bad, _report(bad, 'public names without an API entry (run `python tools/add_api_docs.py`, then rebuild)')


def test_layout(site, pages):
    """Code up to 120 columns (the library's line limit) fits the text column at 1280 px, display math scrolls rather than being cut, every code
    block has a copy button, every page has previous/next links, chapter pages link their paper and official code,
    the home page has a card per chapter, and every image has alt text."""
    bad = {}
    order = site['info']['pages']
    for p, r in pages.items():
        items = [*r['wide_code']]
        if r['math_cut']: items.append(f'{r["math_cut"]} display equations that cannot scroll')
        if r['copy_buttons'] != r['code_blocks']: items.append(f'{r["code_blocks"] - r["copy_buttons"]} code blocks without a copy button')
        if len(r['page_nav']) != (1 if p in (order[0], order[-1]) else 2): items.append(f'previous/next links: {r["page_nav"]}')
        items += [f'image without alt text: {i}' for i in r['no_alt']]
        if re.match(r'(intl|rotpro|flexmol)\b', p) and not (any('arxiv.org' in h for h in r['chapter_links'])
                                                             and any('github.com' in h for h in r['chapter_links'])):
            items.append('no link to the paper and its official code under the title')
        if items: bad[p] = items
    # the home page: a card for each paper chapter, linking to the chapter's first page, its paper and its code
    home = pages['index.html']
    for key, info in build_docs.PAPERS.items():
        title = build_docs.CHAPTERS[key]
        files = dict(build_docs.sidebar_sections()).get(title)
        if not files: continue
        first = {v: k for k, v in SOURCES.items()}.get(files[0], build_docs.output_file(files[0], {}))
        if not any(first in links and info['paper_url'] in links and info['code_url'] in links for links in home['cards']):
            bad.setdefault('index.html', []).append(f'no chapter card linking {first}, {info["paper_url"]} and {info["code_url"]}')
    for links in home['cards']:
        for h in links:
            if not re.match(r'^[a-z]+:', h) and not (site['out']/h.split('#')[0]).is_file():
                bad.setdefault('index.html', []).append(f'a chapter card links to {h}, which is not a page')
    assert not bad, _report(bad, 'layout problems')


def test_figures_have_captions(site):
    "Every figure a cell stores has a `#| fig-cap` (shown under it) or at least a `#| fig-alt` (read by screen readers)."
    bad = {}
    for w in site['info']['warnings']:
        m = re.match(r'(\S+\.ipynb): (the figure .*)', w)
        if m: bad.setdefault({v: k for k, v in SOURCES.items()}.get(m.group(1), m.group(1)), []).append(m.group(2))
    assert not bad, _report(bad, 'figures without caption or alt text')


def test_tables_and_math_need_no_repair(site):
    """Every row of a Markdown table has as many cells as its header (an unescaped `|` in a cell splits it and GFM drops
    the extra cell silently), and no math holds a control character (a JSON `\\t` that ate the `\\t` of `\\times`;
    the build repairs it, the notebook should not need it)."""
    bad = {}
    for w in site['info']['warnings']:
        m = re.match(r'(\S+\.ipynb): (a table row with .*|a control character .*)', w)
        if m: bad.setdefault({v: k for k, v in SOURCES.items()}.get(m.group(1), m.group(1)), []).append(m.group(2))
    assert not bad, _report(bad, 'tables with rows of the wrong width, or math with control characters')


def test_phone_width_has_a_menu(site):
    "Below 760 px the sidebar folds into a menu button that opens it; the page does not scroll sideways."
    b = site['browser']
    b.send('Emulation.setDeviceMetricsOverride', width=390, height=844, deviceScaleFactor=1, mobile=True)
    try:
        page = build_docs.output_file(_chapter_pages()['core'], {})
        b.goto(site['url'] + page)
        st = b.eval("""(() => { const s = document.getElementById('sidebar'), t = document.getElementById('sidebar-toggle');
                        return {sidebar: getComputedStyle(s).display, toggle: getComputedStyle(t).display,
                                width: document.documentElement.scrollWidth}; })()""")
        assert st['sidebar'] == 'none' and st['toggle'] != 'none', st
        assert st['width'] <= 390, f'the page is {st["width"]} px wide at a 390 px window'
        b.screenshot(ARTIFACTS/'phone.png')
        b.eval("document.getElementById('sidebar-toggle').click()")
        opened = b.eval("""(() => { const s = document.getElementById('sidebar'); const r = s.getBoundingClientRect();
                          return {display: getComputedStyle(s).display, width: r.width, links: s.querySelectorAll('a').length,
                                  expanded: document.getElementById('sidebar-toggle').getAttribute('aria-expanded')}; })()""")
        assert opened['display'] != 'none' and opened['width'] > 200 and opened['links'] > 5 and opened['expanded'] == 'true', opened
        b.screenshot(ARTIFACTS/'phone_menu.png')
        assert not b.problems()
    finally:
        b.send('Emulation.setDeviceMetricsOverride', width=1280, height=900, deviceScaleFactor=1, mobile=False)


def test_contents_mark_the_current_section(site):
    "Scrolled to a section, the contents (right-hand column from 1500 px, in the sidebar below) mark that section."
    b = site['browser']
    for width, sel in ((1600, '#TOC a.active'), (1280, '#sidebar .sidebar-toc a.active')):
        b.send('Emulation.setDeviceMetricsOverride', width=width, height=900, deviceScaleFactor=1, mobile=False)
        b.goto(site['url'] + 'core.html')
        hid = b.eval("""(() => { const hs = [...document.querySelectorAll('main h2[id]')]; const h = hs[Math.min(3, hs.length - 1)];
                       window.scrollTo(0, h.getBoundingClientRect().top + window.scrollY - 80); return h.id; })()""")
        for _ in range(40):
            active = b.eval(f"[...document.querySelectorAll('{sel}')].map(a => a.getAttribute('href'))")
            if active == [f'#{hid}']: break
            time.sleep(0.05)
        assert active == [f'#{hid}'], (width, hid, active)
        visible = b.eval(f"getComputedStyle(document.querySelector('{sel}').closest('nav')).display")
        assert visible != 'none', (width, sel)
    b.send('Emulation.setDeviceMetricsOverride', width=1280, height=900, deviceScaleFactor=1, mobile=False)


def test_search_finds_an_api_name_with_plain_text_snippets(site):
    b = site['browser']
    b.goto(site['url'] + 'index.html')
    b.eval("""(() => { const i = document.getElementById('search-input'); i.focus(); i.value = 'save_checkpoint';
                       i.dispatchEvent(new Event('input')); })()""")
    for _ in range(50):
        hrefs = b.eval("[...document.querySelectorAll('#search-results a')].map(a => a.getAttribute('href'))")
        if hrefs: break
        time.sleep(0.1)
    assert any(h.endswith('core.html#save_checkpoint') for h in hrefs), hrefs
    assert not b.problems()
    # snippets are plain text: the TeX of the pages' math never shows in them (it is read as Unicode: θ, ‖, ∑ ...)
    search = json.loads((site['out']/'search.json').read_text())
    text = {}
    for e in search: text[e['href'].split('#')[0]] = text.get(e['href'].split('#')[0], '') + ' ' + e['text']
    bad = {}
    for page in text:
        body = (site['out']/page).read_text()
        for tex in re.findall(r'<(?:span|div) class="math[^"]*">(.*?)</(?:span|div)>', body, flags=re.S):
            tex = html.unescape(tex).strip()
            if '\\' in tex and len(tex) > 4 and tex in text[page]: bad.setdefault(page, []).append(tex[:80])
    assert not bad, _report(bad, 'TeX in search snippets')


def test_screenshots_of_chapters_and_results(site):
    "Screenshots a person checks: the home page, the first page of each chapter, an INTL proof and a results table."
    b, outs = site['browser'], site['info']['pages']
    b.goto(site['url'] + 'index.html')
    b.screenshot(ARTIFACTS/'home.png')
    shots = [ARTIFACTS/'home.png']
    for title, rel in _chapter_pages().items():
        b.goto(site['url'] + build_docs.output_file(rel, {}))
        shots.append(b.screenshot(ARTIFACTS/f'chapter_{title.lower().replace("-", "")}.png'))
    for o in [o for o in outs if o.startswith('intl')]:
        b.goto(site['url'] + o)
        rect = b.eval("""(() => { const h = [...document.querySelectorAll('main h2, main h3, main h4, main p > strong:first-child')]
                             .find(h => /proof|theorem|proposition|lemma/i.test(h.textContent));
                           if (!h) return null; const r = h.getBoundingClientRect(); return {x: 0, y: r.top + window.scrollY - 20}; })()""")
        if rect:
            shots.append(b.screenshot(ARTIFACTS/'intl_proof.png', {'x': 0, 'y': rect['y'], 'width': 1280, 'height': 1100})); break
    for o in sorted(outs, key=lambda o: ('experiment' not in o, o)):
        b.goto(site['url'] + o)
        rect = b.eval("""(() => { const t = document.querySelector('main .cell-output table'); if (!t) return null;
                           const r = t.getBoundingClientRect(); return {x: 0, y: r.top + window.scrollY - 120}; })()""")
        if rect:
            shots.append(b.screenshot(ARTIFACTS/'results_table.png', {'x': 0, 'y': max(rect['y'], 0), 'width': 1280, 'height': 1000}))
            break
    for s in shots: assert s.stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------------------------
# Stored outputs and notebook text (no browser): what the site would show that a reader should not see
# ---------------------------------------------------------------------------------------------------------------
NOISE = {
    'progress bar': re.compile(r'\r(?!\n)|\d+%\|[█▏▎▍▌▋▊▉ #]*\||\d+(?:\.\d+)?(?:it|s)/(?:s|it)\]|█{3,}'),
    'warning': re.compile(r'\b\w*Warning\b:|\bwarnings\.warn\(|^\s*warn\(', re.M),
    'machine detail': re.compile(r'\bLinux [\w.-]+ \d+\.\d+\.\d+|#\d+ SMP\b|x86_64 GNU/Linux|(?<![\w.])/(?:work|home|root|tmp|Users)/[\w.-]+|'
                                 r'site-packages/|\.venv/|\bcuda:\d+ \(|\bhostname\b', re.I),
}


def _output_text(o) -> str:
    if o.get('output_type') == 'stream': return ''.join(o.get('text', ''))
    if o.get('output_type') == 'error': return '\n'.join(o.get('traceback', []))
    d = o.get('data') or {}
    return ''.join(d.get('text/plain', '')) + ''.join(d.get('text/markdown', ''))


def stored_output_offenders(nbs=None) -> dict:
    "{notebook: [problems]}: noisy stored outputs, visible warning filters, literal TABs in Markdown cells."
    nbs = nbs or build_docs.NBS
    out = {}
    for p in build_docs._pages(nbs):
        if p.suffix != '.ipynb': continue
        cells = json.loads(p.read_text()).get('cells', [])
        items = []
        for i, c in enumerate(cells):
            src = ''.join(c.get('source', ''))
            if c.get('cell_type') == 'markdown' and '\t' in src:
                items.append(f'cell {i}: a literal TAB in Markdown (a `\\t` escape eating a backslash?): '
                             f'{src[max(0, src.index(chr(9)) - 30):src.index(chr(9)) + 10]!r}')
            if c.get('cell_type') != 'code': continue
            opts, _ = build_docs.cell_options(src)
            hidden = any(re.match(r'^\s*#\|\s*(hide|exporti?)\b', l) for l in src.splitlines()) or \
                str(opts.get('include', True)).lower() == 'false' or str(opts.get('echo', True)).lower() == 'false'
            # a filter call that starts a code line (not one in a string, such as a subprocess's script), outside a
            # `catch_warnings` block (which tests that a warning is raised, and is part of the page's content)
            if (re.search(r'^\s*(\w+\.)?(filterwarnings|simplefilter)\(', src, re.M) and 'catch_warnings(' not in src
                    and not hidden):
                items.append(f'cell {i}: a visible warning filter; move it to a cell of its own under `#| hide`')
            if str(opts.get('output', True)).lower() == 'false' or str(opts.get('include', True)).lower() == 'false': continue
            for o in c.get('outputs') or []:
                text = _output_text(o)
                if o.get('output_type') == 'stream' and o.get('name') == 'stderr' and text.strip() and not NOISE['progress bar'].search(text):
                    items.append(f'cell {i}: stderr output: {" ".join(text.split())[:100]}')
                    continue
                for name, rx in NOISE.items():
                    m = rx.search(text)
                    if m: items.append(f'cell {i}: {name}: {" ".join(text[max(0, m.start() - 40):m.end() + 40].split())[:120]!r}')
        if items: out[p.relative_to(nbs).as_posix()] = items
    return out


def test_stored_outputs_are_short():
    """Stored outputs show no progress bars, warnings or build-machine details (kernel strings, absolute paths),
    warning filters are hidden cells, and Markdown cells hold no literal TAB (a JSON `\\t` that ate `\\times`)."""
    bad = stored_output_offenders()
    assert not bad, _report({k: v for k, v in bad.items()}, 'notebooks with noisy stored outputs or text').replace('(nbs/?)', '')


def test_sidebar_yml_is_valid_for_quarto():
    "nbs/sidebar.yml, which Quarto reads, lists only notebooks that exist, grouped in the chapter order."
    import yaml
    cfg = yaml.safe_load((build_docs.NBS/'sidebar.yml').read_text())
    contents = cfg['website']['sidebar']['contents']
    files = [c for c in contents if isinstance(c, str)] + [f for c in contents if isinstance(c, dict) for f in c['contents']]
    for f in files: assert (build_docs.NBS/f).exists(), f'nbs/sidebar.yml lists {f}, which does not exist'
    titles = [c['section'] for c in contents if isinstance(c, dict)]
    order = list(build_docs.CHAPTERS.values()) + [build_docs.OTHER_SECTION]
    assert titles == sorted(titles, key=order.index)
    # nbdev-docs rewrites nbs/nbdev.yml from pyproject.toml: it must come out identical, or the deploy dirties the tree
    from nbdev.config import get_config
    from nbdev.quarto import _nbdev_yml
    cfg = get_config(ROOT)
    vals = {k: cfg[k] for k in ['title', 'description', 'branch', 'git_url', 'doc_host', 'doc_baseurl']}
    assert _nbdev_yml.format(doc_path=cfg.doc_path.name, **vals) == (build_docs.NBS/'nbdev.yml').read_text()
    q = yaml.safe_load((build_docs.NBS/'_quarto.yml').read_text())
    assert q['project']['type'] == 'website' and 'sidebar.yml' in q['metadata-files']
    assert q['format']['html']['html-math-method'] == 'katex'
