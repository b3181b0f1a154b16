#!/usr/bin/env python3
"""Checks, in a real browser, that every text of an SVG plan picture lies inside its box (across and down).

Usage: text_fit.py CHROMIUM SVG... . Each SVG is inlined into an HTML page whose script measures
every <text> of every node and cluster (getBBox, with the fonts this machine has) against the
shapes of that node or cluster, and writes the overflows into the page; Chromium's --dump-dom
prints the page after the script ran. Exit 1 listing the overflows, 0 when every text fits.
"""
import html
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = """
const out = [];
let texts = 0;
for (const group of document.querySelectorAll('g.node, g.cluster')) {
  const shapes = [...group.querySelectorAll('polygon, path, ellipse, rect')]
    .filter(s => s.getAttribute('fill') !== 'none' || s.getAttribute('stroke') !== 'none');
  if (shapes.length === 0) continue;
  // The group's own outline: the extent of its shapes, across and down.
  let left = Infinity, right = -Infinity, top = Infinity, bottom = -Infinity;
  for (const s of shapes) {
    const b = s.getBBox();
    left = Math.min(left, b.x);
    right = Math.max(right, b.x + b.width);
    top = Math.min(top, b.y);
    bottom = Math.max(bottom, b.y + b.height);
  }
  for (const t of group.querySelectorAll('text')) {
    texts += 1;
    const b = t.getBBox();
    if (b.x < left - 0.5 || b.x + b.width > right + 0.5 || b.y < top - 0.5 || b.y + b.height > bottom + 0.5) {
      out.push({text: t.textContent, text_left: b.x, text_right: b.x + b.width, box_left: left, box_right: right,
                text_top: b.y, text_bottom: b.y + b.height, box_top: top, box_bottom: bottom});
    }
  }
}
document.getElementById('result').textContent = JSON.stringify({texts, overflows: out});
"""


def check(chromium, svg_path, work):
    page = work / (svg_path.stem + ".html")
    svg = svg_path.read_text(encoding="utf-8")
    svg = svg[svg.index("<svg"):]
    page.write_text("<!DOCTYPE html><html><body>" + svg + '<pre id="result">not run</pre><script>' + SCRIPT +
                    "</script></body></html>", encoding="utf-8")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={work / 'profile'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    start = dom.index('<pre id="result">') + len('<pre id="result">')
    result = json.loads(html.unescape(dom[start:dom.index("</pre>", start)]))
    return result


def main():
    chromium, svgs = sys.argv[1], [Path(p) for p in sys.argv[2:]]
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for svg in svgs:
            result = check(chromium, svg, Path(tmp))
            if result["texts"] == 0:
                print(f"FAILED: {svg.name}: no text measured")
                failed = True
            for o in result["overflows"]:
                print(f"FAILED: {svg.name}: '{o['text']}' spans x {o['text_left']:.1f}..{o['text_right']:.1f}, "
                      f"y {o['text_top']:.1f}..{o['text_bottom']:.1f}; its box x {o['box_left']:.1f}.."
                      f"{o['box_right']:.1f}, y {o['box_top']:.1f}..{o['box_bottom']:.1f}")
                failed = True
            print(f"{svg.name}: {result['texts']} texts, {len(result['overflows'])} outside their box")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
