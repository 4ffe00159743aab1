"""The documentation site: build it offline with `tools/build_docs.py`, serve it on 127.0.0.1 and load its pages in
headless Chromium (Debian's `chromium`, driven through the Chrome DevTools protocol over a websocket).

Every page must load without console errors or failed requests, typeset all its math with the local KaTeX (no raw
`$$`, `\\(` or `\\[` left in the text, no KaTeX error boxes) and show every image. Screenshots of each page, of the INTL
proofs and of a results table go to `artifacts/docs/` (git-ignored) for a person to look at.
"""
import base64, functools, http.server, json, os, re, shutil, subprocess, sys, tempfile, threading, time, urllib.request
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
    touched = [f for f in new if f.startswith(MAY_TOUCH) and (ROOT/f).exists() and (ROOT/f).stat().st_mtime >= t_start]
    assert not touched, f'the docs build changed files that git sees: {touched}'
    for d in ('_proc', '.cache/docs-npm', '.cache/docs-build', '_docs'):
        assert subprocess.run(['git', 'check-ignore', '-q', f'{d}/page.html'], cwd=ROOT).returncode == 0, f'{d}/ is not git-ignored'


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    exe = _chromium()
    before, t_start = _git_status(), time.time()
    out = tmp_path_factory.mktemp('site')/'_docs'
    info = build_docs.build(out)
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


# What each page must satisfy, evaluated in the page after it loaded and its scripts ran.
CHECK_JS = r"""
(() => {
  const main = document.querySelector('main');
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, .katex').forEach(e => e.remove());
  const text = clone.textContent;
  const raw = [];
  for (const pat of ['$$', '\\(', '\\[', '\\begin{', '$\\']) if (text.includes(pat)) {
    const i = text.indexOf(pat); raw.push(pat + ' in: ' + text.slice(Math.max(0, i - 60), i + 60));
  }
  const imgs = [...document.images];
  return {
    title: document.title,
    h1: (document.querySelector('h1.title') || {}).textContent,
    math: document.querySelectorAll('main .math').length,
    typeset: document.querySelectorAll('main .math .katex').length,
    katex_errors: [...document.querySelectorAll('.katex-error')].map(e => e.title || e.textContent).slice(0, 5),
    raw_math: raw,
    images: imgs.length,
    broken_images: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src').slice(0, 120)),
    sidebar: [...document.querySelectorAll('#sidebar a')].map(a => a.getAttribute('href')),
    sections: [...document.querySelectorAll('#sidebar .sidebar-section-title')].map(e => e.textContent),
    search: !!document.getElementById('search-input'),
    katex_css: [...document.styleSheets].some(s => (s.href || '').includes('site_libs/katex/katex.min.css')),
  };
})()
"""


def _chapter_pages():
    "One page per chapter whose notebooks exist (the first in its section), the home page and core."
    secs = build_docs.sidebar_sections()
    pages = {'home': 'index.ipynb'}
    for title, files in secs:
        if title: pages[title] = files[0]
    assert (build_docs.NBS/'00_core.ipynb').exists()
    pages['core'] = '00_core.ipynb'
    return pages


def _check(site, out_file, shot_name):
    b = site['browser']
    b.goto(site['url'] + out_file)
    r = b.eval(CHECK_JS)
    b.screenshot(ARTIFACTS/f'{shot_name}.png')
    problems = b.problems()
    assert not problems, f'{out_file}: {problems}'
    assert r['search'] and r['katex_css'], r
    assert r['math'] == r['typeset'], f'{out_file}: {r["math"] - r["typeset"]} math elements not typeset'
    assert not r['katex_errors'], f'{out_file}: KaTeX errors {r["katex_errors"]}'
    assert not r['raw_math'], f'{out_file}: raw math left in the text: {r["raw_math"]}'
    assert not r['broken_images'], f'{out_file}: images that did not load: {r["broken_images"]}'
    return r


def test_every_page_loads_with_math_and_images(site):
    pages = build_docs.sidebar_sections()
    outs = site['info']['pages']
    assert 'index.html' in outs and 'core.html' in outs, outs
    chapters = _chapter_pages()
    results = {}
    for out_file in outs:
        name = Path(out_file).stem.replace('.', '_')
        results[out_file] = _check(site, out_file, name)
    home = results['index.html']
    # the sidebar lists every page, grouped by the chapters that exist, with Foundation first
    assert home['sections'][0] == 'Foundation'
    assert [t for t, _ in pages if t] == home['sections']
    assert len(home['sidebar']) == len(outs)
    for title, rel in chapters.items():
        out_file = build_docs.output_file(rel, {})
        assert out_file in results, f'no page for the {title} chapter ({rel})'
    # math is typeset somewhere (the docs page about the site itself always has some)
    assert sum(r['typeset'] for r in results.values()) > 0


def test_screenshots_of_proofs_and_results(site):
    "Screenshots a person checks: the home page, the INTL proof section and a results table with its plot."
    b, outs = site['browser'], site['info']['pages']
    b.goto(site['url'] + 'index.html')
    b.screenshot(ARTIFACTS/'home.png')
    intl = [o for o in outs if o.startswith('intl')]
    shots = []
    if intl:
        for o in intl:
            b.goto(site['url'] + o)
            rect = b.eval("""(() => { const h = [...document.querySelectorAll('main h2, main h3, main h4, main p > strong:first-child, main p > em:first-child')]
                                 .find(h => /proof|theorem|proposition|lemma/i.test(h.textContent));
                               if (!h) return null; const r = h.getBoundingClientRect(); return {x: 0, y: r.top + window.scrollY - 20}; })()""")
            if rect:
                shots.append(b.screenshot(ARTIFACTS/'intl_proof.png', {'x': 0, 'y': rect['y'], 'width': 1280, 'height': 1100})); break
    for o in outs:
        if 'experiment' not in o and 'reproduce' not in o: continue
        b.goto(site['url'] + o)
        rect = b.eval("""(() => { const t = document.querySelector('main .cell-output table, main .cell-output img')
                               || [...document.querySelectorAll('main h2, main h3')].filter(h => /result/i.test(h.textContent))
                                    .map(h => h.nextElementSibling).find(e => e) || document.querySelector('main table');
                           if (!t) return null;
                           const r = t.getBoundingClientRect(); return {x: 0, y: r.top + window.scrollY - 120}; })()""")
        if rect:
            shots.append(b.screenshot(ARTIFACTS/f'results_{Path(o).stem.replace(".", "_")}.png',
                                      {'x': 0, 'y': max(rect['y'], 0), 'width': 1280, 'height': 1200}))
    # a table a cell printed (stored output), experiments pages first
    for o in sorted(outs, key=lambda o: ('experiment' not in o and 'reproduce' not in o, o)):
        b.goto(site['url'] + o)
        rect = b.eval("""(() => { const t = document.querySelector('main .cell-output table'); if (!t) return null;
                           const r = t.getBoundingClientRect(); return {x: 0, y: r.top + window.scrollY - 120}; })()""")
        if rect:
            shots.append(b.screenshot(ARTIFACTS/'results_table.png', {'x': 0, 'y': max(rect['y'], 0), 'width': 1280, 'height': 1000}))
            break
    assert (ARTIFACTS/'home.png').stat().st_size > 10_000
    for s in shots: assert s.stat().st_size > 10_000


def test_search_finds_an_api_name(site):
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


def test_nbdev_links_resolve_inside_the_site(site):
    "Backticked names link through _modidx.py to nbdev's absolute URLs; offline they point at this site's anchors."
    core = (site['out']/'core.html').read_text()
    assert 'href="core.html#save_checkpoint"' in core or 'href="#save_checkpoint"' in core or 'core.html#save_checkpoint' in core
    assert 'id="save_checkpoint"' in core
    assert 'reprbook.github.io' not in re.sub(r'<link[^>]*>', '', core.split('<main', 1)[1])
    # API reference from show_doc, hidden cells removed
    assert 'show_doc(' not in core and '#| export' not in core and 'nbdev_export' not in core
    # every link between pages reaches a page, and a link to a public top-level name reaches its show_doc heading
    # (nbdev also links methods and private names, which have no heading unless a notebook calls show_doc on them)
    ids = {p.relative_to(site['out']).as_posix(): set(re.findall(r'\bid="([^"]+)"', p.read_text())) for p in site['out'].rglob('*.html')}
    bad = []
    for page, _ in ids.items():
        body = (site['out']/page).read_text().split('<main', 1)[1]
        for href in re.findall(r'<a\b[^>]*?\bhref="([^"]*)"', body):
            if re.match(r'^[a-z][a-z0-9+.-]*:', href): continue
            target, _, frag = href.partition('#')
            target = os.path.normpath(os.path.join(os.path.dirname(page), target)) if target else page
            if target not in ids: bad.append(f'{page}: {href}')
            elif frag and '.' not in frag and not frag.startswith('_') and frag not in ids[target]: bad.append(f'{page}: {href}')
    assert not bad, bad
    search = json.loads((site['out']/'search.json').read_text())
    assert {'objectID', 'href', 'title', 'section', 'text'} <= set(search[0])


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
