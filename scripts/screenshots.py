"""Take the README's screenshots in a real Airflow: the connection form with "Together AI" selected, and a
task instance's "Together batch" link after a run. ``make screenshots``; not part of CI.

It makes a throwaway Airflow home (SQLite, every user an admin, no login), runs the example DAG with
``airflow dags test`` against the bundled emulator, starts ``airflow api-server`` and drives a headless
Chromium through the DevTools protocol (over aiohttp, which the provider already needs). Before saving a
picture it checks the page shows what the picture claims: the form's labels and fields as
``together_provider/connection_form.py`` declares them, the link to the batch the run created.

Needs Airflow 3.2 or later (the form is built from the provider info from 3.2 on) and Chromium
(Debian/Ubuntu: ``apt-get update && apt-get install -y chromium``; or set ``CHROMIUM`` to its path).
The PNGs go to ``docs/images/`` (``--out`` to choose).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAG_ID = "example_together_batch"
LINKED_TASK = "submit_batch"
KEY = "screenshots-key-not-secret"
# The emulator is no Together host, so the link needs a pattern of its own: the default one, as a
# connection to Together's API would use it.
CONSOLE_URL = "https://api.together.ai/batches/{batch_id}"
WIDTH, HEIGHT = 1280, 800
LINK_HEIGHT = 440


def chromium_path() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    raise SystemExit(
        "no Chromium found: install it (Debian/Ubuntu: apt-get update && apt-get install -y chromium) "
        "or set CHROMIUM to its path"
    )


def check_airflow() -> None:
    version = importlib.metadata.version("apache-airflow")
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < (3, 2):
        raise SystemExit(f"Airflow {version}: the screenshots need Airflow 3.2 or later (the form's fields)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, ready: Callable[[], Any], limit: float, procs: list[subprocess.Popen[Any]]) -> Any:
    """Poll ``ready`` until it returns something true; the limit only stops a hang."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{what}: a process it needs exited with {proc.returncode}")
        try:
            value = ready()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"{what} was not ready after {limit:g} s")


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[Any]:
    """A process in a session of its own, so :func:`stop` ends the children it starts too (the
    api-server's worker, the browser behind Debian's ``chromium`` wrapper)."""
    with open(log, "w") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[Any]) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def airflow_env(work: Path, emulator_url: str) -> dict[str, str]:
    # Only this run's settings: a developer's shell must not change what is shown.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW", "TOGETHER_"))}
    connection = {"conn_type": "together", "host": emulator_url, "extra": {"console_url": CONSOLE_URL}}
    env.update(
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{work}/airflow.db",
        # Every user an admin, with no login page: nothing here outlives the run.
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW_CONN_TOGETHER_DEFAULT=json.dumps(connection),
        TOGETHER_API_KEY=KEY,
        TOGETHER_EXAMPLE_POLL_INTERVAL="1",
        TOGETHER_EXAMPLE_RESULTS_URL=(work / "results").as_uri(),
    )
    return env


def latest_run(db: Path) -> tuple[str, str]:
    """The example DAG's run, and the batch its submit created (the task's return value)."""
    with sqlite3.connect(db) as conn:
        (run_id,) = conn.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()
        (value,) = conn.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value'",
            (DAG_ID, run_id, LINKED_TASK),
        ).fetchone()
    return run_id, json.loads(value if isinstance(value, str) else bytes(value).decode())


class Page:
    """One Chromium tab over the DevTools protocol: commands, JavaScript, clicks, typing, pictures."""

    def __init__(self, http: Any, ws: Any) -> None:
        self.http, self.ws, self._ids = http, ws, 0

    @classmethod
    async def open(cls, devtools_port: int) -> Page:
        import aiohttp

        http = aiohttp.ClientSession()
        async with http.put(f"http://127.0.0.1:{devtools_port}/json/new?about:blank") as answer:
            target = await answer.json(content_type=None)
        page = cls(http, await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0))
        await page.send("Page.enable")
        await page.size(WIDTH, HEIGHT)
        return page

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._ids += 1
        sent = self._ids
        await self.ws.send_json({"id": sent, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json()
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    async def size(self, width: int, height: int) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    async def js(self, expression: str) -> Any:
        got = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in got:
            raise RuntimeError(f"{expression}: {got['exceptionDetails']}")
        return got["result"].get("value")

    async def until(self, what: str, expression: str, limit: float = 60.0) -> Any:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.25)
        raise SystemExit(f"the page never showed {what}")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def click_button(self, scope: str, text: str) -> None:
        """A real mouse click in the button's middle: Chakra's accordion does not open on ``.click()``."""
        found = json.dumps(text)
        x, y = await self.until(
            f"a button {text!r}",
            f"""(() => {{
                const b = [...document.querySelectorAll({json.dumps(scope + " button")})]
                    .find(b => b.textContent.trim() === {found});
                if (!b) return null;
                b.scrollIntoView({{block: "center"}});
                const r = b.getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2];
            }})()""",
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def type_into(self, selector: str, text: str) -> None:
        await self.until(selector, f"!!document.querySelector({json.dumps(selector)})")
        await self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.send("Input.insertText", text=text)

    async def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13
            )

    async def settle(self) -> None:
        """Let animations (an accordion opening, a dialog fading in) end before a picture."""
        await asyncio.sleep(1.0)

    async def picture(self, path: Path, selector: str | None = None) -> None:
        """The viewport, or only what ``selector`` covers."""
        params: dict[str, Any] = {"format": "png"}
        if selector:
            x, y, w, h = await self.js(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                " return [r.x, r.y, r.width, r.height]; })()"
            )
            params["clip"] = {"x": x, "y": y, "width": w, "height": h, "scale": 1}
        shot = await self.send("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(shot["data"]))
        print(f"Saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def expect(text: str, wanted: list[str], where: str) -> None:
    missing = [w for w in wanted if w not in text]
    if missing:
        raise SystemExit(f"{where} does not show {missing}; nothing saved for it")


async def connection_form(page: Page, base: str, out: Path) -> None:
    from together_provider.connection_form import CONN_FIELDS, PLACEHOLDERS, RELABELING

    dialog = "[role=dialog]"
    # Tall enough for the dialog with every extra field open, so the clip holds all of it.
    await page.size(WIDTH, 1600)
    await page.goto(f"{base}/connections")
    await page.click_button("body", "Add Connection")
    await page.type_into(f"{dialog} input[name=connection_id]", "together_default")
    await page.type_into(f"{dialog} input[aria-autocomplete=list]", "Together AI")
    await page.press_enter()
    await page.until(
        "the Together AI form", f"document.querySelector('{dialog}').innerText.includes('Base URL')"
    )
    await page.settle()
    text = await page.js(f"document.querySelector('{dialog}').innerText")
    placeholders = await page.js(
        f"[...document.querySelectorAll('{dialog} input')].map(i => i.placeholder).join('\\n')"
    )
    expect(text, ["Together AI", *RELABELING.values()], "the connection form")
    expect(
        placeholders, [PLACEHOLDERS["host"], PLACEHOLDERS["password"]], "the connection form's placeholders"
    )
    await page.picture(out / "connection-form.png", dialog)
    # One section open at a time: the extras are a picture of their own.
    await page.click_button(dialog, "Extra Fields")
    await page.until(
        "the extra fields", f"document.querySelector('{dialog}').innerText.includes('Max retries')"
    )
    await page.settle()
    text = await page.js(f"document.querySelector('{dialog}').innerText")
    expect(text, [spec["label"] for spec in CONN_FIELDS.values()], "the extra fields")
    await page.picture(out / "connection-form-extras.png", dialog)
    await page.size(WIDTH, HEIGHT)


async def task_link(page: Page, base: str, run_id: str, batch_id: str, out: Path) -> None:
    from urllib.parse import quote

    await page.goto(f"{base}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{LINKED_TASK}/details")
    href = await page.until(
        "the Together batch link",
        "(() => { const a = [...document.querySelectorAll('a')]"
        ".find(a => a.textContent.trim() === 'Together batch'); return a ? a.href : null; })()",
    )
    if href != CONSOLE_URL.format(batch_id=batch_id):
        raise SystemExit(f"the Together batch link leads to {href}, not to batch {batch_id}")
    await page.settle()
    # The header, the tabs and the link: the rows of the details table below add nothing.
    await page.size(WIDTH, LINK_HEIGHT)
    await page.settle()
    await page.picture(out / "task-extra-link.png")


async def take(devtools_port: int, base: str, run_id: str, batch_id: str, out: Path) -> None:
    page = await Page.open(devtools_port)
    try:
        await connection_form(page, base, out)
        await task_link(page, base, run_id, batch_id, out)
    finally:
        await page.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--keep", action="store_true", help="keep the Airflow home and logs")
    args = parser.parse_args()
    chromium = chromium_path()
    check_airflow()
    from together_provider.testing.emulator import EmulatorServer

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="together-screenshots-"))
    procs: list[subprocess.Popen[Any]] = []
    try:
        with EmulatorServer(api_key=KEY, validating_seconds=1, processing_seconds=2) as emulator:
            env = airflow_env(work, emulator.url)
            airflow = str(BIN / "airflow")
            subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
            print(f"Running {DAG_ID} against the emulator (airflow dags test)")
            with open(work / "dags-test.log", "w") as log:
                ran = subprocess.run([airflow, "dags", "test", DAG_ID], env=env, stdout=log, stderr=log)
            if ran.returncode != 0:
                raise SystemExit(f"the DAG run failed; its log is {work / 'dags-test.log'}")
            run_id, batch_id = latest_run(work / "airflow.db")

            port = free_port()
            base = f"http://127.0.0.1:{port}"
            print("Starting airflow api-server")
            procs.append(
                start(
                    [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                    work / "api-server.log",
                    env,
                )
            )
            import urllib.request

            wait_for(
                "the api-server",
                lambda: urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5).status == 200,
                180,
                procs,
            )

            profile = work / "chromium"
            flags = ["--headless", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-port=0"]
            if os.geteuid() == 0:
                flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
            procs.append(
                start([chromium, *flags, f"--user-data-dir={profile}", "about:blank"], work / "chromium.log")
            )
            port_file = profile / "DevToolsActivePort"
            wait_for(
                "Chromium", lambda: port_file.exists() and port_file.read_text().split("\n")[0], 60, procs
            )
            devtools_port = int(port_file.read_text().split("\n")[0])
            asyncio.run(take(devtools_port, base, run_id, batch_id, args.out))
        return 0
    finally:
        for proc in reversed(procs):
            stop(proc)
        if args.keep:
            print(f"Kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
