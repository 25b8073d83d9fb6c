"""Screenshots of the gateway's web page for the docs: `make run` (tools/run_host.py) in a data
folder of its own, the page in headless Chromium, then docs/web-page.png (the live view) and
docs/web-settings.png (the config.json editor)::

    .venv/bin/python tools/screenshot_page.py               # rewrites docs/web-page.png, docs/web-settings.png
    .venv/bin/python tools/screenshot_page.py --out /tmp/x  # somewhere else

It needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`; .ci/run
installs them) and selenium (requirements-dev.txt). The browser tests (tests/test_web_browser.py)
open their browser with `open_browser` and take the same pictures with `capture`.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
PAGE_SHOT, SETTINGS_SHOT = "web-page.png", "web-settings.png"
WIDTH = 1000
# Headless and quiet: without the background-networking switches Chromium keeps dialling Google's
# services, which this project's closed test machines refuse (and CI has no display or sandbox).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")
SCREENSHOT_PASSWORD = "screenshot-pw"  # the settings picture shows the login of a gateway with a password


def browser_paths():
    """(chromium, chromedriver): Debian's binaries, or None for one that is not installed."""
    return shutil.which("chromium"), shutil.which("chromedriver")


def open_browser(profile_dir, width=WIDTH, height=900):
    """A headless Chromium driven by Debian's chromedriver (never one selenium would download),
    with the page's console kept for `console_errors`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths()
    if not chromium or not chromedriver:
        raise RuntimeError("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--user-data-dir=%s" % profile_dir)
    options.add_argument("--window-size=%d,%d" % (width, height))
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(chromedriver))


def console_errors(driver):
    """The page's own script errors (network refusals such as a 400 the page handles are not)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and entry.get("source") == "javascript"]


def texts(driver, ids):
    """{id: the element's text or None when it is missing}, read in one go (one moment of the page)."""
    return driver.execute_script(
        "var out={};arguments[0].forEach(function(id){var e=document.getElementById(id);"
        "out[id]=e?e.textContent:null;});return out;", list(ids))


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout_s, what))


def wait_for_live(driver, module_key="0x50", timeout_s=60):
    """The page shows live values from the stream: the indicator says live and U has a value."""
    def shown():
        now = texts(driver, ("conn", "u-" + module_key, "import-total-%s-1" % module_key))
        return now["conn"] == "live" and now["u-" + module_key] not in (None, "-") and now
    return wait_until(shown, timeout_s, "live values on the page")


def _full_height_shot(driver, path):
    """The whole document in one picture: the window grown until its viewport holds it all."""
    driver.set_window_size(WIDTH, 600)
    for _ in range(3):
        missing = driver.execute_script("return document.documentElement.scrollHeight - window.innerHeight")
        if missing <= 0:
            break
        size = driver.get_window_size()
        driver.set_window_size(WIDTH, size["height"] + missing)
    driver.save_screenshot(path)


def capture(driver, url, out_dir):
    """The live view, then the settings view once config.json has loaded, as PNGs in ``out_dir``;
    returns their paths."""
    driver.get(url)
    wait_for_live(driver)
    wait_until(lambda: texts(driver, ["import-total-0x50-1"])["import-total-0x50-1"] not in ("-", "0.000"), 90,
               "energy in the table (a period or two)")
    page = os.path.join(out_dir, PAGE_SHOT)
    _full_height_shot(driver, page)
    driver.get(url + "#settings")
    wait_until(lambda: driver.find_element("id", "cfg-text").get_attribute("value").strip(), 30,
               "config.json in the editor")
    wait_for_live(driver)
    settings = os.path.join(out_dir, SETTINGS_SHOT)
    _full_height_shot(driver, settings)
    return page, settings


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser(description="Screenshots of the web page into docs/")
    parser.add_argument("--out", default=DOCS, help="where the PNGs go (default docs/)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="rbamp-shots-")
    with open(os.path.join(ROOT, "tools", "host_config.json")) as f:
        config = json.load(f)
    config["web"] = {"password": SCREENSHOT_PASSWORD}
    config_path = os.path.join(work, "config.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    port = _free_port()
    env = dict(os.environ, WEB_PORT=str(port))  # make run WEB_PORT=...
    for name in ("BROKER", "CONFIG", "DATA"):
        env.pop(name, None)
    with open(os.path.join(work, "run.out"), "w") as out:
        run = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "run_host.py"), "--config", config_path,
                                "--data", os.path.join(work, "data")], stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    url = "http://127.0.0.1:%d/" % port
    driver = None
    try:
        wait_until(lambda: _answers(url + "api/state"), 90, "make run to serve %s" % url)
        driver = open_browser(os.path.join(work, "chromium"))
        os.makedirs(args.out, exist_ok=True)
        for path in capture(driver, url, args.out):
            print(path)
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
