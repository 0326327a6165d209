#!/usr/bin/env python3
"""Drives headless Debian chromium through chromedriver (WebDriver over HTTP on 127.0.0.1,
stdlib only) against a served nepho registry site, and prints what it saw as JSON.

Usage: registry-browser.py SITE_URL [--query Q]... [--page REL] [--copy-expect TEXT]
                           [--screenshots DIR] [--latency-query Q]

--query Q          type Q into the home page's search box; report the result names in order
--page REL         open this cloudlet page: report its scenarios and parameters
--copy-expect T    click the page's copy button; report the clipboard's text
--screenshots DIR  save home.png and cloudlet.png (desktop) and cloudlet-phone.png
--latency-query Q  type Q one character at a time; report each keystroke's handling time
"""
import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1200,900",
]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="nepho-chromium-")
        self.proc = subprocess.Popen(
            [shutil.which("chromedriver") or "/usr/bin/chromedriver", f"--port={self.port}",
             "--allowed-ips=127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 20
        while True:
            try:
                self.call("GET", "/status")
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        binary = shutil.which("chromium") or "/usr/bin/chromium"
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary,
                                   "args": FLAGS + [f"--user-data-dir={self.profile}"]},
        }}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script, *args):
        return self.s("POST", "/execute/async", {"script": script, "args": list(args)})

    def find(self, css):
        return self.s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, element, text):
        self.s("POST", f"/element/{element}/value", {"text": text})

    def cdp(self, cmd, params):
        return self.s("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def close(self):
        try:
            self.s("DELETE", "")
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def result_names(d):
    return d.js("return Array.from(document.querySelectorAll('#results li > a'))"
                ".map(a => a.textContent)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("site")
    ap.add_argument("--query", action="append", default=[])
    ap.add_argument("--page")
    ap.add_argument("--copy-expect")
    ap.add_argument("--screenshots")
    ap.add_argument("--latency-query", action="append", default=[])
    a = ap.parse_args()
    site = a.site if a.site.endswith("/") else a.site + "/"
    out = {}
    d = Driver()
    try:
        d.go(site + "index.html")
        out["home_title"] = d.js("return document.title")
        out["initial"] = result_names(d)
        out["viewport_meta"] = d.js(
            "const m = document.querySelector('meta[name=viewport]'); return m && m.content")
        out["external_assets"] = d.js(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => !n.startsWith(location.origin))")
        box = d.find("#q")
        out["queries"] = {}
        for q in a.query:
            d.js("document.getElementById('q').value = ''")
            d.type(box, q)
            out["queries"][q] = {
                "names": result_names(d),
                "count": d.js("return document.getElementById('count').textContent"),
            }
        if a.screenshots:
            os.makedirs(a.screenshots, exist_ok=True)
            d.js("document.getElementById('q').value = ''")
            if a.query:
                d.type(box, a.query[0])
            d.screenshot(os.path.join(a.screenshots, "home.png"))
        if a.latency_query:
            timings = []
            for q in a.latency_query:
                d.js("const q = document.getElementById('q'); q.value = '';"
                     "q.dispatchEvent(new Event('input'))")
                for n in range(1, len(q) + 1):
                    # performance.now() around the input event's handling; then with the
                    # layout it causes forced, as the next frame would pay it.
                    t = d.js(
                        "const q = document.getElementById('q'); q.value = arguments[0];"
                        "const t0 = performance.now(); q.dispatchEvent(new Event('input'));"
                        "const t1 = performance.now(); document.body.offsetHeight;"
                        "return [t1 - t0, performance.now() - t0];",
                        q[:n])
                    timings.append({"query": q[:n], "ms": t[0], "with_layout_ms": t[1],
                                    "count": d.js("return document.getElementById('count').textContent")})
            # And real keystrokes through WebDriver, timed by the page's own handler.
            d.js("document.getElementById('q').value = ''")
            d.type(box, a.latency_query[0][:1])
            typed = d.js("return window.nephoLastSearchMs")
            timings.append({"query": "(typed) " + a.latency_query[0][:1], "ms": typed,
                            "with_layout_ms": typed, "count": None})
            out["latency"] = timings
            out["entries"] = d.js("return window.NEPHO_SEARCH.length")
        if a.page:
            origin = site.rstrip("/")
            d.go(site + a.page)
            out["page_title"] = d.js("return document.title")
            out["scenarios"] = d.js("""
              return Array.from(document.querySelectorAll('section.scenario')).map(s => ({
                name: s.id.replace(/^scenario-/, ''),
                provider: s.querySelector('.provider').textContent,
                parameters: Array.from(s.querySelectorAll('tr.param')).map(r => ({
                  name: r.dataset.param,
                  type: r.children[1].textContent,
                  default: r.children[2].textContent,
                  description: r.children[3].textContent,
                  secret: !!r.querySelector('.badge.secret'),
                })),
              }));""")
            out["versions"] = d.js(
                "return Array.from(document.querySelectorAll('table.versions tbody tr'))"
                ".map(r => r.children[0].textContent)")
            out["copy_button_visible"] = d.js(
                "const b = document.querySelector('button.copy'); return !!b && !b.hidden")
            if a.copy_expect is not None:
                d.cdp("Browser.grantPermissions", {
                    "origin": origin,
                    "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
                d.s("POST", f"/element/{d.find('button.copy')}/click", {})
                deadline = time.time() + 5
                while time.time() < deadline and not d.js(
                        "return document.querySelector('button.copy').dataset.copied"):
                    time.sleep(0.05)
                out["copied_by_handler"] = d.js(
                    "return document.querySelector('button.copy').dataset.copied || null")
                out["clipboard"] = d.js_async(
                    "const done = arguments[arguments.length - 1];"
                    "navigator.clipboard.readText().then(done, e => done('ERROR: ' + e))")
            if a.screenshots:
                d.screenshot(os.path.join(a.screenshots, "cloudlet.png"))
                d.s("POST", "/window/rect", {"width": 390, "height": 844})
                d.cdp("Emulation.setDeviceMetricsOverride", {
                    "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
                d.go(site + a.page)
                out["phone_overflow"] = d.js(
                    "return document.documentElement.scrollWidth - window.innerWidth")
                d.screenshot(os.path.join(a.screenshots, "cloudlet-phone.png"))
    finally:
        d.close()
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
