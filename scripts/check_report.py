"""Renders the report of a run and checks it in a real browser (headless Chromium).

    python scripts/check_report.py RUN [--shot report.png] [--width 1280]

Writes RUN's report, takes a screenshot of it, and loads a copy of the page with a small script that
records whether the page is wider than the window (horizontal overflow) and which elements stick out.
Prints one line per check; exit status 0 when every check passes, 1 otherwise, 2 without a browser.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")

#: Runs in the page once it has loaded; writes what it measured into the DOM for --dump-dom to show.
PROBE = """
<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.right > root.clientWidth + 1 && !el.closest(".scroll")) wide.push(el.tagName.toLowerCase());
  }
  const out = document.createElement("pre");
  out.id = "hwnas-probe";
  out.textContent = JSON.stringify({
    scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, images: document.images.length,
    brokenImages: [...document.images].filter((i) => !i.complete || i.naturalWidth === 0).length,
    sticksOut: wide.slice(0, 10),
  });
  document.body.appendChild(out);
});
</script>
"""


@dataclass(frozen=True)
class PageCheck:
    """What the browser measured on the page."""

    scroll_width: int
    client_width: int
    images: int
    broken_images: int
    sticks_out: tuple[str, ...]

    @property
    def overflows(self) -> bool:
        return self.scroll_width > self.client_width


def find_browser() -> str | None:
    """The path of a Chromium-family browser, or ``None``."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _run(browser: str, args: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(browser: str, page: Path, shot: Path, *, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of the top ``width x height`` pixels of ``page``."""
    proc = _run(browser, [f"--screenshot={shot}", f"--window-size={width},{height}", page.resolve().as_uri()])
    if not shot.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot: {proc.stderr.strip()[-500:]}")
    return shot


def measure(browser: str, page: Path, *, width: int = 1280) -> PageCheck:
    """Loads a copy of ``page`` with :data:`PROBE` in a ``width``-pixel window and reads what it measured."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / page.name
        probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
        proc = _run(
            browser,
            ["--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},900", probe.as_uri()],
        )
    found = re.search(r'<pre id="hwnas-probe">(.*?)</pre>', proc.stdout, re.DOTALL)
    if not found:
        raise RuntimeError(f"the probe did not run in {browser}: {proc.stderr.strip()[-500:]}")
    data = json.loads(html.unescape(found.group(1)))
    return PageCheck(
        scroll_width=int(data["scrollWidth"]),
        client_width=int(data["clientWidth"]),
        images=int(data["images"]),
        broken_images=int(data["brokenImages"]),
        sticks_out=tuple(data["sticksOut"]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory (its report is written first)")
    parser.add_argument("--shot", default=None, help="where to save the screenshot (default: RUN/report.png)")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels (default 1280)")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium here (apt-get install chromium): nothing checked", file=sys.stderr)
        return 2
    from nas.report import write_report

    files = write_report([args.run])
    shot = screenshot(browser, files.html, Path(args.shot or Path(args.run) / "report.png"), width=args.width)
    check = measure(browser, files.html, width=args.width)
    ok = not check.overflows and check.broken_images == 0 and check.images > 0
    print(f"screenshot: {shot}")
    print(f"page width {check.scroll_width} px in a {check.client_width} px window: "
          + ("overflows" if check.overflows else "no horizontal overflow"))  # fmt: skip
    if check.sticks_out:
        print(f"elements past the right edge: {', '.join(check.sticks_out)}")
    print(f"{check.images} images, {check.broken_images} broken")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
