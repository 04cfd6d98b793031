"""The example page in headless Chromium, against a gateway process and the example worker.

Chromium and ChromeDriver are Debian's (``chromium``, ``chromium-driver``);
``tools/run-tests.sh`` installs them. Selenium is pointed at both binaries, so
it never downloads a browser of its own.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests import services

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = services.REPOSITORY / "test-artifacts"
EXAMPLE_QUEUE = "stirfried-browser-examples"


@pytest.fixture(scope="module")
def example_config(redis_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("browser")
    return services.write_config(
        directory / "stirfried.yaml",
        {
            "broker_url": broker_url,
            "result_backend": redis_url,
            "task_default_queue": EXAMPLE_QUEUE,
            "worker_prefetch_multiplier": 1,
            "stirfried_redis_url": redis_url,
            "stirfried_example_page": True,
            "stirfried_anonymous": True,
            "stirfried_error_info": True,
            # The restarted gateway must accept the tokens the first one issued.
            "stirfried_token_secret": "browser-test-secret",
        },
    )


@pytest.fixture(scope="module")
def example_worker(example_config: Path) -> Iterator[None]:
    """``celery -A stirfried.examples worker`` with two processes."""
    services.purge_queues(services.load_config(example_config).celery["broker_url"], [EXAMPLE_QUEUE])
    log = example_config.parent / "example-worker.log"
    with services.celery_worker(example_config, EXAMPLE_QUEUE, log, concurrency=2, app="stirfried.examples"):
        yield


class GatewayProcess:
    """``stirfried-server`` on a fixed port, so a browser can reconnect after a restart."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.port = services.free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.start_serving("/")

    def start_serving(self, path: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stirfried.server", "--config", str(self.config), "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=1):
                    return
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


@pytest.fixture
def gateway_process(example_config: Path, example_worker: None) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(example_config)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def browser(gateway_process: GatewayProcess) -> Iterator[WebDriver]:
    """Headless Chromium; its screenshot is taken while the gateway still runs."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install Debian's chromium and chromium-driver "
            "(tools/run-tests.sh does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1200,800"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "example-page.png"))
        driver.quit()


def wait_until(driver: WebDriver, condition: Any, timeout: float = 30) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda _: condition())


def send(driver: WebDriver, task_name: str, **arguments: str) -> WebElement:
    """Schedule a task from the form, its argument fields filled in; return its new row."""
    before = len(driver.find_elements(By.CSS_SELECTOR, "#tasks tbody tr"))
    wait_until(driver, lambda: driver.find_element(By.ID, "task-name").is_enabled())  # the catalog is in
    Select(driver.find_element(By.ID, "task-name")).select_by_value(task_name)
    for name, value in arguments.items():
        field = driver.find_element(By.ID, f"arg-{name}")
        field.clear()
        field.send_keys(value)
    driver.find_element(By.ID, "send").click()
    wait_until(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")) > before)
    row: WebElement = driver.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")[0]  # newest first
    return row


def row_of(driver: WebDriver, task_id: str | None) -> WebElement:
    row: WebElement = driver.find_element(By.CSS_SELECTOR, f'#tasks tbody tr[data-task-id="{task_id}"]')
    return row


def text_of(row: WebElement, name: str) -> str:
    return row.find_element(By.CSS_SELECTOR, f"td.{name}").text


def open_page(browser: WebDriver, gateway: GatewayProcess) -> None:
    browser.get(gateway.url)
    wait_until(browser, lambda: browser.find_element(By.ID, "connection").text == "connected")


def test_progress_task_fills_the_bar_and_shows_the_result(browser, gateway_process):
    open_page(browser, gateway_process)

    row = send(browser, "count_to", total="5")

    wait_until(browser, lambda: text_of(row, "state") == "SUCCESS")
    bar = row.find_element(By.TAG_NAME, "progress")
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("5", "5")
    assert text_of(row, "progress").startswith("100% step 5 of 5")
    assert text_of(row, "result") == "5"


def test_failing_task_shows_its_error(browser, gateway_process):
    open_page(browser, gateway_process)

    row = send(browser, "fail", message="the disk is full")

    wait_until(browser, lambda: text_of(row, "state") == "FAILURE")
    wait_until(browser, lambda: text_of(row, "result") == "ValueError: the disk is full")


def test_revoked_queued_task_never_runs(browser, gateway_process):
    open_page(browser, gateway_process)
    blockers = [send(browser, "sleep", seconds="2") for _ in range(2)]  # both worker processes busy

    queued = send(browser, "add", x="1", y="2")
    queued.find_element(By.CSS_SELECTOR, "button.revoke").click()
    wait_until(browser, lambda: text_of(queued, "result") == "revoke requested")
    for blocker in blockers:
        wait_until(browser, lambda blocker=blocker: text_of(blocker, "state") == "SUCCESS")

    def revoked() -> bool:
        queued.find_element(By.CSS_SELECTOR, "button.info").click()
        time.sleep(0.2)
        return text_of(queued, "state") == "REVOKED"

    wait_until(browser, revoked, timeout=15)


def test_page_reports_a_gateway_restart_and_recovers(browser, gateway_process):
    open_page(browser, gateway_process)
    running = send(browser, "count_to", total="10")  # 0.3 s per step
    wait_until(browser, lambda: text_of(running, "state") == "PROGRESS")

    gateway_process.stop()
    wait_until(browser, lambda: "disconnected" in browser.find_element(By.ID, "connection").text)
    gateway_process.start()
    wait_until(browser, lambda: browser.find_element(By.ID, "connection").text == "connected (reconnected)")

    # The task went on while the page was cut off: the page resubscribed, got
    # the events it missed replayed, and shows the task finished, not stuck.
    wait_until(browser, lambda: text_of(running, "state") == "SUCCESS")
    assert text_of(running, "progress").startswith("100% step 10 of 10")
    assert text_of(running, "result") == "10"

    row = send(browser, "add", x="20", y="22")
    wait_until(browser, lambda: text_of(row, "result") == "42")


def test_finished_task_shows_start_and_duration_and_cannot_be_revoked(browser, gateway_process):
    open_page(browser, gateway_process)

    row = send(browser, "count_to", total="4")
    revoke = row.find_element(By.CSS_SELECTOR, "button.revoke")
    assert revoke.is_enabled()
    wait_until(browser, lambda: text_of(row, "state") == "SUCCESS")

    assert not revoke.is_enabled()
    assert text_of(row, "started")
    assert re.fullmatch(r"1\.[2-9] s|[2-9]\.\d s", text_of(row, "duration"))  # four steps of 0.3 s
    state = row.find_element(By.CSS_SELECTOR, "td.state")
    assert state.get_attribute("class") == "state state-SUCCESS"


def test_revoking_a_running_task_says_it_keeps_running(browser, gateway_process):
    open_page(browser, gateway_process)
    row = send(browser, "count_to", total="4")
    wait_until(browser, lambda: text_of(row, "state") == "PROGRESS")
    # a state other than SUCCESS/FAILURE has its own colour
    progress_colour = row.find_element(By.CSS_SELECTOR, "td.state").value_of_css_property("color")
    assert progress_colour != browser.find_element(By.CSS_SELECTOR, "td.name").value_of_css_property("color")

    row.find_element(By.CSS_SELECTOR, "button.revoke").click()

    wait_until(browser, lambda: "it keeps running" in text_of(row, "result"))
    wait_until(browser, lambda: text_of(row, "state") == "SUCCESS")
    assert text_of(row, "result").startswith("4 (the revoke came after it had started: it kept running)")


def test_page_loads_without_errors_and_fits_a_narrow_screen(browser, gateway_process):
    browser.set_window_size(400, 800)
    open_page(browser, gateway_process)
    row = send(browser, "add", x="1", y="2")
    wait_until(browser, lambda: text_of(row, "result") == "3")

    # no request failed (a favicon 404 would show here) and no script error
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    for element in (row.find_element(By.CSS_SELECTOR, "button.info"), browser.find_element(By.ID, "send")):
        assert element.is_displayed()
        box = element.rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= width


def test_the_form_is_built_from_the_catalog_of_the_example_worker(browser, gateway_process):
    open_page(browser, gateway_process)
    picker = browser.find_element(By.ID, "task-name")
    wait_until(browser, picker.is_enabled)

    # The catalog is the fleet's: other tests' workers on the same Redis may serve more.
    options = [option.get_attribute("value") or "" for option in Select(picker).options]
    assert options == sorted(options)
    assert {"add", "count_to", "fail", "flaky", "sleep"} <= set(options)
    Select(picker).select_by_value("count_to")
    assert browser.find_element(By.ID, "task-doc").text.startswith("Count to")
    total, delay = browser.find_element(By.ID, "arg-total"), browser.find_element(By.ID, "arg-delay")
    assert (total.get_attribute("type"), total.get_attribute("step"), total.get_attribute("value")) == (
        "number", "1", "10",
    )  # fmt: skip
    assert (delay.get_attribute("step"), delay.get_attribute("value")) == ("any", "0.3")
    fields = browser.find_elements(By.CSS_SELECTOR, "#task-fields input")
    assert [field.get_attribute("name") for field in fields] == ["total", "delay"]  # the signature's order
    Select(picker).select_by_value("add")
    x = browser.find_element(By.ID, "arg-x")
    assert x.get_attribute("required") == "true" and x.get_attribute("value") == ""
    assert "*" in x.find_element(By.XPATH, "..").text  # marked required in its label


def test_my_tasks_are_listed_after_a_reload_and_running_ones_followed_again(browser, gateway_process):
    open_page(browser, gateway_process)
    finished = send(browser, "add", x="2", y="3")
    wait_until(browser, lambda: text_of(finished, "result") == "5")
    running = send(browser, "count_to", total="8")  # 0.3 s per step
    wait_until(browser, lambda: text_of(running, "state") == "PROGRESS")
    finished_id, running_id = finished.get_attribute("data-task-id"), running.get_attribute("data-task-id")

    browser.refresh()
    open_page(browser, gateway_process)

    wait_until(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")) == 2)
    rows = browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")
    assert [row.get_attribute("data-task-id") for row in rows] == [running_id, finished_id]  # newest first
    assert text_of(row_of(browser, finished_id), "name") == "add"
    wait_until(browser, lambda: text_of(row_of(browser, finished_id), "result") == "5")
    wait_until(browser, lambda: text_of(row_of(browser, running_id), "state") == "SUCCESS")
    assert text_of(row_of(browser, running_id), "result") == "8"
    assert text_of(row_of(browser, running_id), "progress").startswith("100% step 8 of 8")


def readme_web_page() -> str:
    """The README's "From a web page" example, as written."""
    readme = (services.REPOSITORY / "README.md").read_text(encoding="utf-8")
    pages = re.findall(r"<!-- example: html -->\n```html\n(.*?)```", readme, flags=re.DOTALL)
    assert len(pages) == 1
    return pages[0]


def test_readme_web_page_example_runs_from_another_origin(browser, example_config, tmp_path):
    """The README's plain page, served from another origin, against a gateway with
    ``stirfried_cors_origins`` naming it, using the bundle the package ships."""
    page_port = services.free_port()
    page_origin = f"http://127.0.0.1:{page_port}"
    config = services.load_config(example_config)
    cors_config = services.write_config(
        tmp_path / "cors.yaml",
        {**config.as_flat(), "stirfried_example_page": False, "stirfried_cors_origins": [page_origin]},
    )
    gateway = GatewayProcess(cors_config)
    gateway.start_serving("/healthz")
    try:
        site = tmp_path / "site"
        site.mkdir()
        bundle = (
            services.REPOSITORY
            / "server"
            / "development"
            / "static"
            / "vendor"
            / "stirfried-client"
            / "stirfried-client.js"
        )
        shutil.copy(bundle, site / "stirfried-client.js")
        (site / "index.html").write_text(
            readme_web_page().replace("http://127.0.0.1:8000", gateway.url.rstrip("/"))
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(page_port), "--bind", "127.0.0.1", "--directory", str(site)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with urllib.request.urlopen(page_origin + "/index.html", timeout=1):
                        break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            browser.get(page_origin + "/index.html")
            wait_until(browser, lambda: browser.find_element(By.ID, "result").text == "5")
            bar = browser.find_element(By.ID, "bar")
            assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("5", "5")
        finally:
            server.terminate()
            server.wait(10)
    finally:
        gateway.stop()


def test_page_speaks_msgpack_to_a_msgpack_gateway(browser, example_config, tmp_path):
    config = services.load_config(example_config).as_flat()
    gateway = GatewayProcess(
        services.write_config(tmp_path / "msgpack.yaml", {**config, "socketio_serializer": "msgpack"})
    )
    gateway.start()
    try:
        open_page(browser, gateway)
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-serializer") == "msgpack"
        row = send(browser, "count_to", total="2")
        wait_until(browser, lambda: text_of(row, "result") == "2")
    finally:
        gateway.stop()


def test_follow_with_event_source_in_the_browser(browser, gateway_process):
    """``followWithEventSource`` with Chromium's own EventSource, from the bundle the page loads."""
    open_page(browser, gateway_process)
    outcome = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        (async () => {
          const { followWithEventSource } = await import("/static/vendor/stirfried-client/stirfried-client.js");
          const response = await fetch("/task", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ task_name: "count_to", args: [3], kwargs: { delay: 0.1 } }),
          });
          const { data: taskId, token } = await response.json();
          const progress = [];
          const task = followWithEventSource("", taskId, token, { onProgress: (p) => progress.push(p.current) });
          const result = await task.result({ timeout: 20000 });
          const refused = followWithEventSource("", taskId, "wrong-token");
          const error = await refused.result({ timeout: 20000 }).catch((e) => e.message);
          return { result, progress, names: task.events.map((event) => event.name), error };
        })().then(done, (error) => done({ failed: String(error) }));
        """
    )
    assert outcome["result"] == 3, outcome
    assert outcome["progress"] == [1, 2, 3]
    assert outcome["names"] == ["on_progress"] * 3 + ["on_success", "on_return"]
    assert "the gateway refused the event stream" in outcome["error"]
